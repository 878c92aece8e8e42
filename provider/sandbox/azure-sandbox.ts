import { randomBytes, randomUUID } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { makeSelfSignedCertificate } from "../runtime/tls";
import { armHandler, FakeArmControls } from "./azure-arm";
import { EntraTenant, entraHandler, entraIssuer } from "./azure-entra";
import { HttpsJsonServer, startHttpsJson } from "./azure-https";
import { ARM_RESOURCE } from "./azure-imds";
import { AzureWorld } from "./azure-world";
import { loadOrCreateIssuer } from "./gcp-issuer";
import { createSigner, loadOrCreateCa } from "./iid-signer";

/** The sandbox's Azure: the VMs, the fake ARM and Entra ID (both HTTPS), and the files clients find them by. */
export interface AzureSandbox {
  world: AzureWorld;
  /** The fake ARM's call log and RBAC knob. */
  arm: FakeArmControls;
  armEndpoint: string;
  authorityHost: string;
  tenantId: string;
  /** The key set the fake Entra ID publishes (`join.azure.jwks_url`). */
  jwksUrl: string;
  /** The certificate both HTTPS endpoints present: add it to NODE_EXTRA_CA_CERTS. */
  tlsCertFile: string;
  /** Environment for clients of the fake (env.sh, the runtime): see {@link azurePaths}. */
  env: Record<string, string>;
  /** `join.azure` of the sandbox runtime's config. */
  joinConfig: { extra_ca_certs: string[]; jwks_url: string };
  stop(): Promise<void>;
}

/** Files of the Azure part of a sandbox directory. */
export function azurePaths(dir: string) {
  return {
    /** The sandbox's Azure root (self-signed): it issues the attested documents' signer, CN=metadata.azure.com. */
    caCert: path.join(dir, "azure-ca.pem"),
    caKey: path.join(dir, "azure-ca.key"),
    /** Signs Entra ID access tokens and managed identity tokens (PKCS#8 PEM, RSA 2048). */
    issuerKey: path.join(dir, "azure-issuer.key"),
    /** The HTTPS certificate of the fake ARM and Entra ID (127.0.0.1), and its key. */
    tlsCert: path.join(dir, "azure-tls.crt"),
    tlsKey: path.join(dir, "azure-tls.key"),
    /** The tenant and application ids, fixed per sandbox directory. */
    tenant: path.join(dir, "azure-tenant.json"),
  };
}

async function loadOrCreateTls(p: ReturnType<typeof azurePaths>): Promise<{ cert: string; key: string }> {
  if (!fs.existsSync(p.tlsCert) || !fs.existsSync(p.tlsKey)) {
    const made = await makeSelfSignedCertificate("pulumi-discovery sandbox Azure endpoints", [
      "127.0.0.1",
      "localhost",
    ]);
    fs.writeFileSync(p.tlsKey, made.key, { mode: 0o600 });
    fs.writeFileSync(p.tlsCert, made.cert);
  }
  return { cert: fs.readFileSync(p.tlsCert, "utf8"), key: fs.readFileSync(p.tlsKey, "utf8") };
}

function loadOrCreateTenant(file: string): Omit<EntraTenant, "clientSecret"> {
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
  const tenant = { tenantId: randomUUID(), clientId: randomUUID(), objectId: randomUUID() };
  fs.writeFileSync(file, JSON.stringify(tenant, null, 2) + "\n");
  return tenant;
}

/**
 * Starts the Azure part of the sandbox in `dir`, VMs under `instancesDir`. Clients use it with Microsoft's own
 * libraries unchanged, through the standard variables: `AZURE_RESOURCE_MANAGER_ENDPOINT` (the fake ARM),
 * `AZURE_AUTHORITY_HOST` with `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` (EnvironmentCredential
 * against the fake Entra ID), and `NODE_EXTRA_CA_CERTS` holding {@link AzureSandbox.tlsCertFile}.
 * `AZURE_IMDS_ENDPOINT` is per VM and set only inside the VM's run commands and SSH sessions.
 */
export async function startAzureSandbox(dir: string, instancesDir: string): Promise<AzureSandbox> {
  const p = azurePaths(dir);
  const ca = await loadOrCreateCa(p.caCert, p.caKey, "pulumi-discovery sandbox Azure root CA");
  const attestationSigner = await createSigner({ commonName: "metadata.azure.com", issuer: ca, isCa: false });
  const tenant: EntraTenant = { ...loadOrCreateTenant(p.tenant), clientSecret: randomBytes(24).toString("base64url") };
  const issuer = loadOrCreateIssuer(p.issuerKey, entraIssuer(tenant.tenantId));
  const tls = await loadOrCreateTls(p);
  const world = new AzureWorld({ dir: instancesDir, keys: { tenantId: tenant.tenantId, attestationSigner, issuer } });
  const servers: HttpsJsonServer[] = [];
  const stop = async () => {
    await Promise.allSettled(servers.map((s) => s.close()));
    await world.stop();
  };
  try {
    let authority = "";
    const entra = await startHttpsJson(
      tls,
      entraHandler(tenant, issuer, () => authority),
    );
    servers.push(entra);
    authority = entra.endpoint;
    let armEndpoint = "";
    // Tokens for this endpoint (what the clients ask for with a custom endpoint) or for Azure's own ARM audience.
    const audiences = () => [armEndpoint, ARM_RESOURCE, "https://management.core.windows.net/"];
    const arm = armHandler({ world, issuer, audiences });
    const armServer = await startHttpsJson(tls, arm.handle);
    servers.push(armServer);
    armEndpoint = armServer.endpoint;
    return {
      world,
      arm: arm.controls,
      armEndpoint,
      authorityHost: authority,
      tenantId: tenant.tenantId,
      jwksUrl: `${authority}/common/discovery/keys`,
      tlsCertFile: p.tlsCert,
      env: {
        AZURE_RESOURCE_MANAGER_ENDPOINT: armEndpoint,
        AZURE_AUTHORITY_HOST: authority,
        AZURE_TENANT_ID: tenant.tenantId,
        AZURE_CLIENT_ID: tenant.clientId,
        AZURE_CLIENT_SECRET: tenant.clientSecret,
      },
      joinConfig: { extra_ca_certs: [p.caCert], jwks_url: `${authority}/common/discovery/keys` },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
