import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FakeGoogleApi, startFakeGoogleApi } from "./gcp-api";
import { GOOGLE_ISSUER, loadOrCreateIssuer } from "./gcp-issuer";
import { GcpWorld } from "./gcp-world";

/** The sandbox's GCP: the VMs, the fake Google APIs, and the files clients find them by. */
export interface GcpSandbox {
  world: GcpWorld;
  api: FakeGoogleApi;
  /** Environment for clients of the fake (env.sh, the runtime): see {@link gcpClientEnv}. */
  env: Record<string, string>;
  /** `join.gcp` of the sandbox runtime's config. */
  joinConfig: { issuer: string; jwks_url: string };
  stop(): Promise<void>;
}

/** Files of the GCP part of a sandbox directory. */
export function gcpPaths(dir: string) {
  return {
    issuerKey: path.join(dir, "gcp-issuer.key"),
    credentials: path.join(dir, "gcp-credentials.json"),
    sshPorts: path.join(dir, "gcp-ssh-ports.json"),
  };
}

/**
 * What a process needs to use the fake with the official clients unchanged:
 * - `GOOGLE_APPLICATION_CREDENTIALS`: ADC reads it; its `token_url` is the fake's `/token`.
 * - `GOOGLE_COMPUTE_ENDPOINT`, `GOOGLE_RESOURCE_MANAGER_ENDPOINT`: `http://127.0.0.1:PORT`; production code
 *   turns one into `{apiEndpoint: url.hostname, port: Number(url.port), protocol: "http"}` (plus `fallback: true`
 *   for Resource Manager) and passes nothing when it is unset.
 * - `DISCOVERY_GCP_SSH_PORTS_FILE`: JSON `{"<instance id>": port}`; every sandbox VM reports networkIP 127.0.0.1
 *   and listens on its own port. Only SSH's port comes from it; the host key is still checked against the VM's
 *   guest attributes, so the file cannot make a client trust a host.
 * - `DISCOVERY_GCP_SSH_USER`: the user running the sandbox. Its VMs' sshd runs as that user and can only log that
 *   user in, where a real VM's guest agent would create the `discovery` login; its guest shell gives it a
 *   passwordless `sudo`, as the guest agent does.
 * `GCE_METADATA_HOST` is per VM and set only inside the VM's SSH sessions.
 */
export function gcpClientEnv(dir: string, endpoint: string): Record<string, string> {
  const p = gcpPaths(dir);
  return {
    GOOGLE_APPLICATION_CREDENTIALS: p.credentials,
    GOOGLE_COMPUTE_ENDPOINT: endpoint,
    GOOGLE_RESOURCE_MANAGER_ENDPOINT: endpoint,
    DISCOVERY_GCP_SSH_PORTS_FILE: p.sshPorts,
    DISCOVERY_GCP_SSH_USER: os.userInfo().username,
  };
}

/** Starts the GCP part of the sandbox in `dir`, VMs under `instancesDir`. */
export async function startGcpSandbox(dir: string, instancesDir: string): Promise<GcpSandbox> {
  const p = gcpPaths(dir);
  const issuer = loadOrCreateIssuer(p.issuerKey);
  const world = new GcpWorld({ dir: instancesDir, issuer, sshPortsFile: p.sshPorts });
  const secrets = {
    refreshToken: randomBytes(24).toString("base64url"),
    clientId: "discovery-sandbox.apps.googleusercontent.com",
    clientSecret: randomBytes(16).toString("base64url"),
  };
  let api: FakeGoogleApi;
  try {
    api = await startFakeGoogleApi({ world, issuer, ...secrets });
  } catch (err) {
    await world.stop();
    throw err;
  }
  // Workforce-federation user credentials are the one ADC type whose token endpoint the file itself names.
  const credentials = {
    type: "external_account_authorized_user",
    audience: "//iam.googleapis.com/locations/global/workforcePools/discovery-sandbox/providers/sandbox",
    client_id: secrets.clientId,
    client_secret: secrets.clientSecret,
    refresh_token: secrets.refreshToken,
    token_url: `${api.endpoint}/token`,
    universe_domain: "googleapis.com",
  };
  fs.writeFileSync(p.credentials, JSON.stringify(credentials, null, 2) + "\n", { mode: 0o600 });
  return {
    world,
    api,
    env: gcpClientEnv(dir, api.endpoint),
    joinConfig: { issuer: GOOGLE_ISSUER, jwks_url: api.jwksUrl },
    stop: async () => {
      await api.close();
      await world.stop();
    },
  };
}
