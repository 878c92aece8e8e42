/**
 * Errors that say what to do: the `discovery` CLI run as a user runs it, against a real runtime (or a port where
 * none listens), with a wrong URL, admin token or certificate. Each message names where the value came from (the
 * flag, the environment variable, the runtime config's field) and the fix. Needs `npm run build`.
 */
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import type { AddressInfo } from "net";
import * as path from "path";
import { stringify } from "yaml";
import { startImds } from "../../provider/sandbox/imds";
import { makeSelfSignedCertificate } from "../../provider/runtime/tls";
import { discoveryAsync } from "../fixtures/cli";
import { freePort } from "../fixtures/moto";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const CERT_HINT =
  "the runtime's certificate is its tls.cert_file, or data/tls.crt beside its store when it made its own; " +
  "its startup line `discovery runtime listening` prints the path";
const TOKEN_HINT =
  "the token is in the runtime's admin_token_file (default data/admin.token beside its config); " +
  "its startup line `discovery runtime listening` prints the path";
/** No runtime named by the environment the tests run in, and no extra CA: each case sets what it needs. */
const CLEAN = {
  DISCOVERY_SERVER: undefined,
  DISCOVERY_ADMIN_TOKEN: undefined,
  NODE_EXTRA_CA_CERTS: undefined,
} as unknown as NodeJS.ProcessEnv;

describe("CLI errors name the setting at fault, where it came from, and the fix", () => {
  let rt: TestRuntime;
  let certFile: string;
  let tokenFile: string;
  let closed: string;
  const run = (args: string[], env: Record<string, string> = {}) =>
    discoveryAsync(args, { env: { ...CLEAN, ...env }, cwd: rt.dir });
  const write = (name: string, text: string) => {
    const file = path.join(rt.dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const failure = async (args: string[], env: Record<string, string> = {}) => {
    const r = await run(args, env);
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 1, stdout: "" });
    return r.stderr;
  };

  beforeAll(async () => {
    rt = await startTestRuntime();
    certFile = path.join(rt.dir, "data", "tls.crt");
    tokenFile = path.join(rt.dir, "data", "admin.token");
    closed = `https://127.0.0.1:${await freePort()}`;
  });
  afterAll(async () => rt?.stop());

  it("connection refused: names --server or DISCOVERY_SERVER and says to start the runtime or fix the URL", async () => {
    const port = new URL(closed).port;
    expect(await failure(["get", "nodes", "--server", closed], { DISCOVERY_ADMIN_TOKEN: "t" })).toBe(
      `discovery: cannot reach ${closed} (from --server): connection refused, nothing listens on port ${port} of ` +
        `127.0.0.1; start the runtime (discovery serve --config FILE) or, if it runs elsewhere, pass --server with ` +
        `the runtime's public_addr\n`,
    );
    expect(await failure(["get", "nodes"], { DISCOVERY_SERVER: closed, DISCOVERY_ADMIN_TOKEN: "t" })).toBe(
      `discovery: cannot reach ${closed} (from DISCOVERY_SERVER): connection refused, nothing listens on port ` +
        `${port} of 127.0.0.1; start the runtime (discovery serve --config FILE) or, if it runs elsewhere, set ` +
        `DISCOVERY_SERVER to the runtime's public_addr, or pass --server\n`,
    );
  });

  it("a port that does not speak TLS: asks whether it is the runtime's https port", async () => {
    const plain = http.createServer((_req, res) => res.end("hello"));
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(plain.address() as AddressInfo).port}`;
    try {
      const stderr = await failure(["get", "nodes", "--server", url], { DISCOVERY_ADMIN_TOKEN: "t" });
      expect(stderr).toMatch(
        new RegExp(
          `^discovery: cannot reach ${url.replace(/\./g, "\\.")} \\(from --server\\): what listens there does not ` +
            `speak TLS \\(.*\\); is it the runtime's https port\\? Pass --server with the runtime's public_addr\n$`,
        ),
      );
    } finally {
      plain.close();
    }
  });

  it("a bad URL: not a URL, or not https, with the source and the URL meant", async () => {
    expect(await failure(["get", "nodes"], { DISCOVERY_SERVER: "127.0.0.1:3080", DISCOVERY_ADMIN_TOKEN: "t" })).toBe(
      `discovery: "127.0.0.1:3080" (from DISCOVERY_SERVER) is not a URL; set DISCOVERY_SERVER to the runtime's ` +
        `public_addr, or pass --server (an https URL such as https://127.0.0.1:3080)\n`,
    );
    const http = rt.url.replace("https:", "http:");
    expect(await failure(["rm", "token", "x", "--server", http], { DISCOVERY_ADMIN_TOKEN: "t" })).toBe(
      `discovery: ${http} (from --server) is not an https URL, and the runtime serves https only; pass --server ` +
        `with the runtime's public_addr (${rt.url})\n`,
    );
  });

  it("a wrong admin token: names the variable or the file it came from and where the right one is", async () => {
    const env = { NODE_EXTRA_CA_CERTS: certFile };
    expect(await failure(["get", "tokens", "--server", rt.url], { ...env, DISCOVERY_ADMIN_TOKEN: "stale" })).toBe(
      `discovery: ${rt.url} refused the admin token from DISCOVERY_ADMIN_TOKEN: a valid admin bearer token is ` +
        `required (401); set DISCOVERY_ADMIN_TOKEN to the content of the runtime's admin_token_file, or pass ` +
        `--admin-token-file with that file: ${TOKEN_HINT}\n`,
    );
    const wrong = write("wrong.token", "not-the-token\n");
    expect(await failure(["get", "tokens", "--server", rt.url, "--admin-token-file", wrong], env)).toBe(
      `discovery: ${rt.url} refused the admin token from --admin-token-file ${wrong}: a valid admin bearer token ` +
        `is required (401); pass --admin-token-file with the runtime's admin_token_file: ${TOKEN_HINT}\n`,
    );
    const missing = path.join(rt.dir, "no-such.token");
    expect(await failure(["get", "tokens", "--server", rt.url, "--admin-token-file", missing], env)).toBe(
      `discovery: --admin-token-file ${missing}: no such file; name the runtime's admin_token_file: ${TOKEN_HINT}\n`,
    );
    // The right one, from the file the message points at, works.
    const ok = await run(["get", "tokens", "--server", rt.url, "--admin-token-file", tokenFile], env);
    expect([ok.status, ok.stderr]).toEqual([0, ""]);
  });

  it("an untrusted certificate: names what was trusted instead (system CAs, NODE_EXTRA_CA_CERTS, --ca-cert)", async () => {
    const token = { DISCOVERY_ADMIN_TOKEN: fs.readFileSync(tokenFile, "utf8").trim() };
    expect(await failure(["get", "nodes", "--server", rt.url], token)).toBe(
      `discovery: ${rt.url} (from --server) presents a certificate not signed by this machine's CAs: ` +
        `self-signed certificate; pass --ca-cert with the runtime's certificate, or set ` +
        `NODE_EXTRA_CA_CERTS to it: ${CERT_HINT}\n`,
    );
    const other = await makeSelfSignedCertificate("other.test", ["127.0.0.1"]);
    const otherFile = write("other.crt", other.cert);
    expect(await failure(["get", "nodes", "--server", rt.url, "--ca-cert", otherFile], token)).toBe(
      `discovery: ${rt.url} (from --server) presents a certificate not signed by --ca-cert ${otherFile}: ` +
        `self-signed certificate; pass --ca-cert with the runtime's certificate: ${CERT_HINT}\n`,
    );
    expect(
      await failure(["get", "nodes"], { ...token, DISCOVERY_SERVER: rt.url, NODE_EXTRA_CA_CERTS: otherFile }),
    ).toBe(
      `discovery: ${rt.url} (from DISCOVERY_SERVER) presents a certificate not signed by this machine's CAs or ` +
        `NODE_EXTRA_CA_CERTS (${otherFile}): self-signed certificate; pass --ca-cert with the runtime's certificate, or set ` +
        `NODE_EXTRA_CA_CERTS to it: ${CERT_HINT}\n`,
    );
    const ok = await run(["get", "nodes", "--server", rt.url, "--ca-cert", certFile], token);
    expect([ok.status, ok.stderr]).toEqual([0, ""]);
  });

  it("an expired certificate, and one for other names: says which, and what to change", async () => {
    const token = { DISCOVERY_ADMIN_TOKEN: "t" };
    /** An https server on 127.0.0.1 presenting `cert`; the CLI trusts exactly that certificate. */
    const serving = async (cert: { cert: string; key: string }) => {
      const server = https.createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.end("{}"));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      return { url, ca: write(`served-${Date.now()}.crt`, cert.cert), close: () => server.close() };
    };
    const twoYearsAgo = new Date(Date.now() - 2 * 365 * 24 * 3600_000);
    const expired = await serving(await makeSelfSignedCertificate("old.test", ["127.0.0.1"], twoYearsAgo));
    const elsewhere = await serving(await makeSelfSignedCertificate("other.test", ["discovery.example.com"]));
    try {
      expect(await failure(["get", "nodes", "--server", expired.url, "--ca-cert", expired.ca], token)).toBe(
        `discovery: ${expired.url} (from --server) presents an expired certificate; renew the runtime's ` +
          "tls.cert_file and restart it\n",
      );
      expect(await failure(["get", "nodes", "--server", elsewhere.url, "--ca-cert", elsewhere.ca], token)).toMatch(
        new RegExp(
          `^discovery: ${elsewhere.url.replace(/\./g, "\\.")} \\(from --server\\) presents a certificate for other names ` +
            `\\(Hostname/IP does not match certificate's altnames: .*\\); use a URL with a name the certificate carries \\(pass --server with ` +
            `.*\\), or give the runtime a certificate for 127\\.0\\.0\\.1\\n$`,
        ),
      );
    } finally {
      expired.close();
      elsewhere.close();
    }
  });

  it("apply stores a region this version does not know with a warning, and refuses a typo", async () => {
    const env = {
      DISCOVERY_SERVER: rt.url,
      NODE_EXTRA_CA_CERTS: certFile,
      DISCOVERY_ADMIN_TOKEN: rt.runtime.adminToken,
    };
    const doc = (region: string) =>
      "kind: discovery_config\nversion: v1\nmetadata: {name: newer}\nspec:\n  discovery_group: later\n" +
      `  aws: [{regions: [${region}]}]\n`;
    const newer = write("newer.yaml", doc("ap-southeast-8"));
    const applied = await run(["apply", "-f", newer], env);
    expect({ status: applied.status, stdout: applied.stdout, stderr: applied.stderr }).toEqual({
      status: 0,
      stdout: "discovery_config/newer created\n",
      stderr:
        `${newer}:6:20: spec.aws[0].regions[0]: warning: "ap-southeast-8" is not an AWS region this version ` +
        `knows; it is used as written in case AWS opened it recently: check it is not a typo of "ap-southeast-1"\n`,
    });
    // The API says the same to a client that sent the document itself.
    const put = await rt.call("PUT", "/v1/resources", doc("ap-southeast-8"), {
      admin: true,
      contentType: "application/yaml",
    });
    expect(put.body.warnings).toEqual([
      {
        line: 6,
        col: 20,
        path: ["spec", "aws", 0, "regions", 0],
        message:
          '"ap-southeast-8" is not an AWS region this version knows; it is used as written in case AWS opened it ' +
          'recently: check it is not a typo of "ap-southeast-1"',
      },
    ]);
    const typo = write("typo.yaml", doc("us-east-9"));
    const refused = await run(["apply", "-f", typo], env);
    expect({ status: refused.status, stderr: refused.stderr }).toEqual({
      status: 1,
      stderr:
        `${typo}:6:20: spec.aws[0].regions[0]: "us-east-9" is not an AWS region: us-east regions are numbered 1 ` +
        `to 2; did you mean "us-east-1"?\ndiscovery: 1 problem(s) found; nothing was applied\n`,
    });
  });

  it("enroll --config with a runtime config: errors name its public_addr, admin_token_file and certificate", async () => {
    const config = (name: string, extra: Record<string, unknown>) =>
      write(
        name,
        stringify({
          version: "v1",
          cluster_name: "discovery.test",
          public_addr: rt.url,
          storage: { type: "sqlite", path: "./data/discovery.db" },
          discovery_service: { aws: [{ regions: ["us-east-1"] }] },
          ...extra,
        }),
      );
    const moved = config("moved.yaml", { public_addr: closed });
    expect(await failure(["enroll", "--config", moved, "--once"])).toBe(
      `discovery: cannot reach ${closed} (from public_addr in ${moved}): connection refused, nothing listens on ` +
        `port ${new URL(closed).port} of 127.0.0.1; start the runtime (discovery serve --config FILE) or, if it ` +
        `runs elsewhere, fix public_addr in ${moved}\n`,
    );
    const otherCert = write("other-tls.crt", (await makeSelfSignedCertificate("other.test", ["127.0.0.1"])).cert);
    const wrongTls = config("wrong-tls.yaml", { tls: { cert_file: "./other-tls.crt", key_file: "./other-tls.key" } });
    expect(await failure(["enroll", "--config", wrongTls, "--once"])).toBe(
      `discovery: ${rt.url} (from public_addr in ${wrongTls}) presents a certificate not signed by ${otherCert} (the ` +
        `tls.cert_file of ${wrongTls}): self-signed certificate; check that ${wrongTls} is the ` +
        `config of the runtime at ${rt.url}, and that no other runtime took its port\n`,
    );
    write("stale.token", "a-token-from-before\n");
    const stale = config("stale.yaml", { admin_token_file: "./stale.token" });
    expect(await failure(["enroll", "--config", stale, "--once"], { NODE_EXTRA_CA_CERTS: certFile })).toBe(
      `discovery: ${rt.url} refused the admin token from ${path.join(rt.dir, "stale.token")} (admin_token_file in ` +
        `${stale}): a valid admin bearer token is required (401); check that ${stale} is the config of the runtime ` +
        `at ${rt.url}, and that no other runtime took its port\n`,
    );
    const noToken = config("no-token.yaml", { admin_token_file: "./missing/admin.token" });
    const missing = path.join(rt.dir, "missing", "admin.token");
    expect(await failure(["enroll", "--config", noToken, "--once"])).toBe(
      `discovery: ${missing} (admin_token_file in ${noToken}) does not exist: start the runtime first ` +
        `(discovery serve --config ${noToken}; it makes the file), or fix admin_token_file\n`,
    );
  });
});

describe("an iam join refused for its STS host names join.aws.sts_endpoint", () => {
  let rt: TestRuntime;
  afterAll(async () => rt?.stop());

  it("discovery join --sts-endpoint of a host the runtime does not allow: both fixes, node and runtime side", async () => {
    rt = await startTestRuntime();
    const token =
      "kind: token\nversion: v2\nmetadata: {name: iam-token}\n" +
      'spec: {roles: [Node], join_method: iam, allow: [{aws_account: "123456789012"}]}\n';
    const put = await rt.call("PUT", "/v1/resources", token, { admin: true, contentType: "application/yaml" });
    expect(put.status).toBe(200);
    const imds = await startImds({
      document: { instanceId: "i-0a1b2c3d4e5f60001", region: "us-east-1" },
      rsa2048: "unused",
      role: { name: "node", credentials: { accessKeyId: "AKIDNODE", secretAccessKey: "s3cret" } },
    });
    try {
      const data = path.join(rt.dir, "node");
      const r = await discoveryAsync(
        [
          ...["join", "--method", "iam", "--token", "iam-token", "--server", rt.url],
          ...["--ca-cert", path.join(rt.dir, "data", "tls.crt"), "--sts-endpoint", "https://sts.internal.example"],
          ...["--data-dir", data, "--host-key", path.join(data, "hk")],
        ],
        { env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint }, cwd: rt.dir },
      );
      expect([r.status, r.stdout]).toEqual([1, ""]);
      expect(r.stderr).toBe(
        `discovery: the runtime refused the join: "sts.internal.example" is not an allowed STS host: sign the ` +
          `request for sts.amazonaws.com or sts.<region>.amazonaws.com (discovery join --sts-endpoint, or ` +
          `AWS_ENDPOINT_URL_STS); if "sts.internal.example" is your STS endpoint (a VPC endpoint or a proxy), set ` +
          `join.aws.sts_endpoint to its https URL in the runtime config (sts_host_not_allowed)\n`,
      );
    } finally {
      await imds.stop();
    }
  });
});
