import * as http from "http";
import type { AddressInfo } from "net";
import type { AzureVm } from "./azure-world";
import type { GcpIssuer } from "./gcp-issuer";
import { signContent, signedDataDer, TestSigner } from "./iid-signer";

/** What one VM's IMDS reads, live, from the fake control plane: the VM's record and its resource ids. */
export type AzureImdsSource = Pick<
  AzureVm,
  "vmId" | "name" | "subscription" | "resourceGroup" | "region" | "tags" | "principalId" | "clientId" | "scaleSet"
> & {
  /** The VM's ARM resource id. */
  resourceId: string;
  /** The managed identity's resource id (`xms_mirid`): the VM's, or its scale set's. */
  identityResourceId: string;
  computerName: string;
};

/** The keys an IMDS signs with: the attested documents' signer and the tenant's token issuer. */
export interface AzureImdsKeys {
  tenantId: string;
  /** CN=metadata.azure.com, issued by the sandbox's Azure root. */
  attestationSigner: TestSigner;
  issuer: GcpIssuer;
}

/** A running per-VM IMDS. */
export interface AzureImdsServer {
  /** `http://127.0.0.1:PORT`: what AZURE_IMDS_ENDPOINT holds inside the VM. */
  endpoint: string;
  /** Every path asked for, with whether `Metadata: true` came along. */
  requests: { path: string; metadata: boolean }[];
  stop(): Promise<void>;
}

/** The managed identity tokens' audience the join asks for. */
export const ARM_RESOURCE = "https://management.azure.com/";
/** The longest nonce IMDS takes; the runtime's challenges are 32 base64url characters. */
export const MAX_NONCE_LENGTH = 32;
const DOCUMENT_TTL_MS = 6 * 3600_000;
const TOKEN_TTL_S = 3600;

const two = (n: number) => String(n).padStart(2, "0");
/** The attested document's time format: `MM/DD/YY HH:MM:SS -0000`, UTC. */
export function attestedTime(d: Date): string {
  const date = `${two(d.getUTCMonth() + 1)}/${two(d.getUTCDate())}/${two(d.getUTCFullYear() % 100)}`;
  return `${date} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} -0000`;
}

/** The signed content of an attested document, with Azure's key order. */
export function attestedContent(src: Pick<AzureImdsSource, "vmId" | "subscription">, nonce: string, now = new Date()) {
  return {
    licenseType: "",
    nonce,
    plan: { name: "", product: "", publisher: "" },
    sku: "22_04-lts-gen2",
    subscriptionId: src.subscription,
    timeStamp: {
      createdOn: attestedTime(now),
      expiresOn: attestedTime(new Date(now.getTime() + DOCUMENT_TTL_MS)),
    },
    vmId: src.vmId,
  };
}

/** `{encoding: "pkcs7", signature}`: DER CMS SignedData over the content, the signer certificate in the bag. */
export async function attestedDocument(
  src: Pick<AzureImdsSource, "vmId" | "subscription">,
  nonce: string,
  signer: TestSigner,
): Promise<{ encoding: "pkcs7"; signature: string }> {
  const signed = await signContent(JSON.stringify(attestedContent(src, nonce)), signer, { embedCerts: [signer] });
  return { encoding: "pkcs7", signature: signedDataDer(signed).toString("base64") };
}

/** The claims of a managed identity access token for `resource` (SPEC §2's contract). */
export function managedIdentityClaims(src: AzureImdsSource, tenantId: string, resource: string, now = new Date()) {
  const iat = Math.floor(now.getTime() / 1000);
  return {
    aud: resource,
    iss: `https://sts.windows.net/${tenantId}/`,
    iat,
    nbf: iat,
    exp: iat + TOKEN_TTL_S,
    aio: "sandbox",
    appid: src.clientId,
    appidacr: "2",
    idp: `https://sts.windows.net/${tenantId}/`,
    idtyp: "app",
    oid: src.principalId,
    rh: "sandbox",
    sub: src.principalId,
    tid: tenantId,
    uti: src.vmId.replace(/-/g, "").slice(0, 22),
    ver: "1.0",
    xms_az_rid: src.identityResourceId,
    xms_mirid: src.identityResourceId,
  };
}

/** `/metadata/instance`'s compute and network sections: what the join and installers read. */
function instanceMetadata(src: AzureImdsSource) {
  return {
    compute: {
      azEnvironment: "AzurePublicCloud",
      location: src.region,
      name: src.name,
      osType: "Linux",
      provider: "Microsoft.Compute",
      resourceGroupName: src.resourceGroup,
      resourceId: src.resourceId,
      sku: "22_04-lts-gen2",
      subscriptionId: src.subscription,
      tags: Object.entries(src.tags)
        .map(([k, v]) => `${k}:${v}`)
        .join(";"),
      tagsList: Object.entries(src.tags).map(([name, value]) => ({ name, value })),
      vmId: src.vmId,
      vmScaleSetName: src.scaleSet ?? "",
      vmSize: "Standard_B1s",
      osProfile: { computerName: src.computerName, adminUsername: "azureuser" },
    },
    network: {
      interface: [
        {
          ipv4: { ipAddress: [{ privateIpAddress: "127.0.0.1", publicIpAddress: "" }], subnet: [] },
          ipv6: { ipAddress: [] },
          macAddress: "000D3A000000",
        },
      ],
    },
  };
}

type Reply = [number, unknown];

/**
 * Starts the IMDS of one VM on a free loopback port. As Azure's, it answers only requests with `Metadata: true`
 * (400 otherwise) and refuses a nonce over 32 characters.
 */
export async function startAzureImds(src: AzureImdsSource, keys: AzureImdsKeys): Promise<AzureImdsServer> {
  const requests: AzureImdsServer["requests"] = [];
  async function answer(pathname: string, q: URLSearchParams): Promise<Reply> {
    if (!q.get("api-version")) return [400, { error: "Bad request. api-version was not specified in the request" }];
    if (pathname === "/metadata/attested/document") {
      const nonce = q.get("nonce") ?? "";
      if (nonce.length > MAX_NONCE_LENGTH)
        return [400, { error: `Bad request. The nonce must be at most ${MAX_NONCE_LENGTH} characters` }];
      return [200, await attestedDocument(src, nonce, keys.attestationSigner)];
    }
    if (pathname === "/metadata/identity/oauth2/token") {
      const resource = q.get("resource");
      if (!resource) return [400, { error: "invalid_request", error_description: "Required query variable 'resource' is missing" }]; // prettier-ignore
      const claims = managedIdentityClaims(src, keys.tenantId, resource);
      const { iss: _iss, ...rest } = claims; // the issuer writes its own `iss`, the same
      return [
        200,
        {
          access_token: keys.issuer.sign(rest),
          client_id: src.clientId,
          expires_in: String(claims.exp - claims.iat),
          expires_on: String(claims.exp),
          ext_expires_in: String(claims.exp - claims.iat),
          not_before: String(claims.nbf),
          resource,
          token_type: "Bearer",
        },
      ];
    }
    if (pathname === "/metadata/instance") return [200, instanceMetadata(src)];
    return [404, { error: "Not found" }];
  }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://169.254.169.254");
    const metadata = req.headers.metadata === "true";
    requests.push({ path: url.pathname, metadata });
    const send = ([status, json]: Reply) => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify(json));
    };
    if (!metadata) return send([400, { error: "Bad request. Required metadata header not specified" }]);
    if (req.method !== "GET") return send([405, { error: "Method not allowed" }]);
    answer(url.pathname, url.searchParams).then(send, (err: Error) => send([500, { error: err.message }]));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
