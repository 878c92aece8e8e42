/**
 * The pieces that make a VM deployment's pins known at deploy time: the RuntimeKeys provider (made once,
 * certificate renewed without touching the CA keys), the runtime adopting shipped CA keys
 * (`certificate_authorities`), and the boot script's secret fetcher against fake SSM and Secret Manager APIs.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import pino from "pino";
import { stringify } from "yaml";
import { FETCH_SECRETS_JS } from "../../provider/deploy/fetch-secrets";
import type { RuntimeKeys } from "../../provider/deploy/keys";
import { runtimeKeysProvider } from "../../provider/pulumi/runtime-keys";
import { seedCertAuthorities } from "../../provider/cli/serve";
import { parseRuntimeConfig } from "../../provider/runtime/config";
import { startRuntime } from "../../provider/runtime/server";
import { describeCertificate } from "../../provider/runtime/tls";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-keys-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** GET over https trusting `ca`, with the admin token; the parsed JSON answer. */
function httpsGet(url: string, ca: string, adminToken: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers: { authorization: `Bearer ${adminToken}` } }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve(JSON.parse(text)));
      })
      .on("error", reject);
  });
}

type KeysState = RuntimeKeys & { clusterName: string; hosts: string[] };

async function makeKeys(hosts = ["203.0.113.10", "ec2-203-0-113-10.compute-1.amazonaws.com"]): Promise<KeysState> {
  return (await runtimeKeysProvider.create!({ clusterName: "discovery.example", hosts })).outs as KeysState;
}

describe("RuntimeKeys", () => {
  it("makes a certificate for the hosts, two Ed25519 CAs and an admin token", async () => {
    const keys = await makeKeys();
    const cert = new crypto.X509Certificate(keys.tlsCert);
    expect(cert.checkIP("203.0.113.10")).toBe("203.0.113.10");
    expect(cert.checkHost("ec2-203-0-113-10.compute-1.amazonaws.com")).toBeTruthy();
    expect(cert.checkPrivateKey(crypto.createPrivateKey(keys.tlsKey))).toBe(true);
    expect(keys.tlsPin).toBe(describeCertificate(keys.tlsCert).publicKeyPin);
    expect(keys.hostCaPublicKey).toMatch(/^ssh-ed25519 \S+ pulumi-discovery-host-ca@/);
    expect(keys.userCaPublicKey).toMatch(/^ssh-ed25519 \S+ pulumi-discovery-user-ca@/);
    expect(keys.hostCaPrivateKey).toContain("-----BEGIN OPENSSH PRIVATE KEY-----");
    expect(keys.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await makeKeys()).adminToken).not.toBe(keys.adminToken);
  });

  it("renews only the certificate when the address changes, keeping the CA keys and the token", async () => {
    const keys = await makeKeys();
    const news = { clusterName: "discovery.example", hosts: ["198.51.100.7"] };
    expect(await runtimeKeysProvider.diff!("id", keys, { clusterName: keys.clusterName, hosts: keys.hosts })).toEqual({
      changes: false,
    });
    expect(await runtimeKeysProvider.diff!("id", keys, news)).toEqual({ changes: true });
    const { outs } = await runtimeKeysProvider.update!("id", keys, news);
    expect(new crypto.X509Certificate(outs.tlsCert).checkIP("198.51.100.7")).toBe("198.51.100.7");
    expect(outs.tlsPin).not.toBe(keys.tlsPin);
    for (const k of [
      "hostCaPrivateKey",
      "hostCaPublicKey",
      "userCaPrivateKey",
      "userCaPublicKey",
      "adminToken",
    ] as const)
      expect(outs[k]).toBe(keys[k]);
  });

  it("renews a certificate within 30 days of its end", async () => {
    const keys = await makeKeys();
    const soon = { ...keys, tlsNotAfter: new Date(Date.now() + 10 * 24 * 3600_000).toISOString() };
    expect(await runtimeKeysProvider.diff!("id", soon, { clusterName: keys.clusterName, hosts: keys.hosts })).toEqual({
      changes: true,
    });
  });
});

describe("the runtime adopts shipped CA keys (certificate_authorities)", () => {
  const configFor = (extra: Record<string, unknown>) => {
    const file = path.join(dir, "runtime.yaml");
    fs.writeFileSync(
      file,
      stringify({
        version: "v1",
        cluster_name: "discovery.example",
        listen_addr: "127.0.0.1:0",
        public_addr: "https://127.0.0.1:3080",
        ...extra,
      }),
    );
    return parseRuntimeConfig(fs.readFileSync(file, "utf8"), file);
  };

  it("serves the shipped keys on GET /v1/cas and keeps them when the files change later", async () => {
    const keys = await makeKeys();
    fs.writeFileSync(path.join(dir, "host_ca.key"), keys.hostCaPrivateKey, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "user_ca.key"), keys.userCaPrivateKey, { mode: 0o600 });
    const config = configFor({
      certificate_authorities: { host_key_file: "host_ca.key", user_key_file: "user_ca.key" },
    });
    expect(config.caKeyFiles).toEqual({ host: path.join(dir, "host_ca.key"), user: path.join(dir, "user_ca.key") });
    await seedCertAuthorities(config);
    const logger = pino({ level: "silent" });
    let runtime = await startRuntime(config, { logger });
    try {
      const cas = await httpsGet(runtime.url + "/v1/cas", runtime.tls.cert, runtime.adminToken);
      expect(cas).toEqual({
        host: { public_keys: [keys.hostCaPublicKey], rotating: false },
        user: { public_keys: [keys.userCaPublicKey], rotating: false },
      });
    } finally {
      await runtime.close();
    }
    // Seeding only starts a store: a store with CAs keeps them (rotations stay the runtime's business).
    const other = await makeKeys();
    fs.writeFileSync(path.join(dir, "host_ca.key"), other.hostCaPrivateKey);
    await seedCertAuthorities(config);
    runtime = await startRuntime(config, { logger });
    try {
      expect((await runtime.store.getCertAuthority("host"))?.active.publicKey).toBe(keys.hostCaPublicKey);
    } finally {
      await runtime.close();
    }
  });

  it("refuses a key file that is missing or not Ed25519, naming the field", async () => {
    const missing = configFor({ certificate_authorities: { host_key_file: "nope.key" } });
    await expect(seedCertAuthorities(missing)).rejects.toThrow(
      /^certificate_authorities\.host_key_file: cannot load .*nope\.key/,
    );
    const rsa = crypto
      .generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ type: "pkcs1", format: "pem" });
    fs.writeFileSync(path.join(dir, "rsa.key"), rsa);
    const config = configFor({ certificate_authorities: { user_key_file: "rsa.key" } });
    await expect(seedCertAuthorities(config)).rejects.toThrow(
      /^certificate_authorities\.user_key_file: .*rsa\.key holds a rsa key; make an Ed25519 one/,
    );
  });

  it("refuses unknown fields under certificate_authorities at their line", () => {
    expect(() => configFor({ certificate_authorities: { host_key: "x" } })).toThrow(
      /runtime\.yaml:\d+:\d+: certificate_authorities/,
    );
  });
});

/** A fake cloud API on loopback: `handle` answers each request. */
async function fakeApi(
  handle: (req: http.IncomingMessage, body: string) => { status: number; body: unknown },
): Promise<{
  url: string;
  requests: { url?: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): void;
}> {
  const requests: { url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      requests.push({ url: req.url, headers: req.headers, body });
      const a = handle(req, body);
      res.writeHead(a.status, { "content-type": "application/x-amz-json-1.1" }).end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, requests, close: () => server.close() };
}

function runFetcher(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = path.join(dir, "fetch-secrets.js");
  fs.writeFileSync(script, FETCH_SECRETS_JS);
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [script],
      { env: { PATH: process.env.PATH, HOME: dir, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

describe("the boot script's secret fetcher", () => {
  const bundle = {
    tls_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    host_ca_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nhost\n-----END OPENSSH PRIVATE KEY-----\n",
    user_ca_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nuser\n-----END OPENSSH PRIVATE KEY-----\n",
    admin_token: "token-0123456789abcdef0123456789abcdef",
  };
  const files = () => ({
    tls_key: path.join(dir, "tls.key"),
    host_ca_key: path.join(dir, "host_ca.key"),
    user_ca_key: path.join(dir, "user_ca.key"),
    admin_token: path.join(dir, "admin.token"),
  });
  const common = () => ({
    DISCOVERY_SECRET_FILES: JSON.stringify(files()),
    DISCOVERY_UID: String(os.userInfo().uid),
    DISCOVERY_GID: String(os.userInfo().gid),
  });
  const expectWritten = () => {
    for (const [field, file] of Object.entries(files())) {
      const want = bundle[field as keyof typeof bundle];
      expect(fs.readFileSync(file, "utf8")).toBe(want.endsWith("\n") ? want : want + "\n");
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    }
  };

  it("reads the SecureString parameter with decryption (AWS SDK of the installed package) and writes 0600 files", async () => {
    const ssm = await fakeApi((req, body) => {
      const call = JSON.parse(body);
      if (req.headers["x-amz-target"] !== "AmazonSSM.GetParameter" || !call.WithDecryption)
        return { status: 400, body: { __type: "ValidationException", message: "want GetParameter WithDecryption" } };
      return {
        status: 200,
        body: { Parameter: { Name: call.Name, Type: "SecureString", Value: JSON.stringify(bundle) } },
      };
    });
    try {
      const r = await runFetcher({
        ...common(),
        DISCOVERY_SECRETS_SOURCE: "aws-ssm",
        DISCOVERY_SECRETS_NAME: "disc-secrets-5d6e7f",
        DISCOVERY_SECRETS_REGION: "eu-west-1",
        DISCOVERY_PACKAGE_DIR: path.resolve(__dirname, "../.."),
        AWS_ENDPOINT_URL: ssm.url,
        AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY: "secret",
      });
      expect(r.stderr).not.toContain("fetch-secrets:");
      expect(r.code).toBe(0);
      expect(JSON.parse(ssm.requests[0].body)).toEqual({ Name: "disc-secrets-5d6e7f", WithDecryption: true });
      expect(ssm.requests[0].headers.authorization).toMatch(
        /Credential=AKIDEXAMPLE\/\d+\/eu-west-1\/ssm\/aws4_request/,
      );
      expectWritten();
    } finally {
      ssm.close();
    }
  });

  it("reads the Secret Manager version with the metadata server's token", async () => {
    const api = await fakeApi((req) => {
      if (req.url === "/computeMetadata/v1/instance/service-accounts/default/token")
        return req.headers["metadata-flavor"] === "Google"
          ? { status: 200, body: { access_token: "ya29.token", expires_in: 3599, token_type: "Bearer" } }
          : { status: 403, body: {} };
      if (req.url === "/v1/projects/my-project/secrets/discovery-disc-abc123/versions/latest:access")
        return req.headers.authorization === "Bearer ya29.token"
          ? { status: 200, body: { payload: { data: Buffer.from(JSON.stringify(bundle)).toString("base64") } } }
          : { status: 401, body: {} };
      return { status: 404, body: {} };
    });
    try {
      const r = await runFetcher({
        ...common(),
        DISCOVERY_SECRETS_SOURCE: "gcp-secret-manager",
        DISCOVERY_SECRETS_NAME: "projects/my-project/secrets/discovery-disc-abc123",
        GCE_METADATA_HOST: api.url.replace("http://", ""),
        DISCOVERY_SECRETMANAGER_ENDPOINT: api.url,
      });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expectWritten();
    } finally {
      api.close();
    }
  });

  it("fails naming a field the bundle lacks, writing nothing", async () => {
    const ssm = await fakeApi((_req, body) => ({
      status: 200,
      body: { Parameter: { Name: JSON.parse(body).Name, Value: JSON.stringify({ ...bundle, admin_token: "" }) } },
    }));
    try {
      const r = await runFetcher({
        ...common(),
        DISCOVERY_SECRET_FILES: JSON.stringify({ admin_token: path.join(dir, "admin.token") }),
        DISCOVERY_SECRETS_SOURCE: "aws-ssm",
        DISCOVERY_SECRETS_NAME: "p",
        DISCOVERY_SECRETS_REGION: "eu-west-1",
        DISCOVERY_PACKAGE_DIR: path.resolve(__dirname, "../.."),
        AWS_ENDPOINT_URL: ssm.url,
        AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY: "secret",
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^fetch-secrets: the secret bundle has no admin_token$/m);
      expect(fs.existsSync(path.join(dir, "admin.token"))).toBe(false);
    } finally {
      ssm.close();
    }
  });
});
