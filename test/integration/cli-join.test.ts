/**
 * `discovery join` as an operator runs it on a node: a path it cannot use fails before anything reaches the
 * runtime (the join stays unspent), and the sshd_config is replaced only by a version `sshd -t` accepts, with its
 * mode kept. Needs `npm run build`.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { discoveryAsync } from "../fixtures/cli";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

const SECRET = "cli-join-secret-93b1e0c4";
const SSHD = "/usr/sbin/sshd";
const BASE_SSHD_CONFIG = "# node sshd\nListenAddress 127.0.0.1\nPort 2222\nUsePAM no\n";

describe("discovery join: paths checked before the join, sshd_config installed only when valid", () => {
  let rt: TestRuntime;
  let work: string;
  const join = (...args: string[]) =>
    discoveryAsync([
      "join",
      ...["--method", "token", "--token", SECRET, "--server", rt.url],
      ...["--ca-cert", path.join(rt.dir, "data", "tls.crt")],
      ...args,
    ]);
  const audited = async () => (await rt.call("GET", "/v1/audit", undefined, { admin: true })).body.events.length;
  const file = (name: string, text: string, mode = 0o644) => {
    const f = path.join(work, name);
    fs.writeFileSync(f, text);
    fs.chmodSync(f, mode);
    return f;
  };

  beforeAll(async () => {
    rt = await startTestRuntime();
    const doc = `kind: token\nversion: v2\nmetadata: {name: ${SECRET}}\nspec: {roles: [Node], join_method: token}\n`;
    expect((await rt.call("PUT", "/v1/resources", doc, { admin: true, contentType: "application/yaml" })).status).toBe(
      200,
    );
    work = path.join(rt.dir, "node");
    fs.mkdirSync(work);
    // sshd -t insists on its privilege separation directory, as on any host where sshd runs.
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  });
  afterAll(async () => rt?.stop());

  it("refuses each unusable path before sending anything, naming the option, then joins once fixed", async () => {
    const hostKey = path.join(work, "keys", "hk");
    const plain = file("plain-file", "x");
    const badSshd = file("sshd_config-bad", BASE_SSHD_CONFIG + "NoSuchOption yes\n", 0o600);
    const data = path.join(work, "data");
    const cases: [string[], string][] = [
      [["--data-dir", plain, "--host-key", hostKey], `--data-dir: ${plain} is not a directory`],
      [["--data-dir", path.join(plain, "sub"), "--host-key", hostKey], "--data-dir: cannot create or write the"],
      [["--data-dir", data, "--host-key", path.join(plain, "hk")], `--host-key: ${plain} is not a directory`],
      [["--data-dir", data, "--host-key", hostKey, "--ca-cert", path.join(work, "nope.pem")], "--ca-cert: cannot read"],
      [
        ["--data-dir", data, "--host-key", hostKey, "--openssh-config", path.join(work, "missing")],
        "--openssh-config: cannot read",
      ],
      [["--data-dir", data, "--host-key", hostKey, "--openssh-config", work], "is not a regular file"],
      [
        ["--data-dir", data, "--host-key", hostKey, "--openssh-config", badSshd],
        `--openssh-config: the edited ${badSshd} does not pass "sshd -t"`,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await join(...args);
      expect([args, r.status]).toEqual([args, 1]);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toContain("nothing was sent to the runtime, the join is still unused");
    }
    expect(await audited()).toBe(0);
    expect(fs.readFileSync(badSshd, "utf8")).toBe(BASE_SSHD_CONFIG + "NoSuchOption yes\n");
    expect(fs.readdirSync(work).filter((f) => f.includes(".tmp"))).toEqual([]);

    // The host key the refused attempts made is the one that joins now: had any attempt reached the runtime,
    // this would be refused as already_joined.
    const ok = await join("--data-dir", data, "--host-key", hostKey);
    expect([ok.status, ok.stderr]).toEqual([0, ""]);
    expect(ok.stdout).toMatch(/^joined as node-[0-9a-f]+\n/);
    expect(fs.statSync(data).mode & 0o777).toBe(0o700);
    expect(await audited()).toBe(1);
  });

  it("installs the edited sshd_config only after sshd -t accepts it, keeping its mode", async () => {
    const config = file("sshd_config", BASE_SSHD_CONFIG, 0o640);
    const data = path.join(work, "data-sshd");
    const r = await join("--data-dir", data, "--host-key", path.join(work, "hk2"), "--openssh-config", config);
    expect([r.status, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain(`wrote ${config}`);
    const edited = fs.readFileSync(config, "utf8");
    expect(edited).toContain(`# managed by pulumi-discovery\nHostKey ${path.join(work, "hk2")}\n`);
    expect(edited).toContain(`HostCertificate ${path.join(work, "hk2")}-cert.pub\n`);
    expect(edited).toContain(`TrustedUserCAKeys ${path.join(data, "user_ca.pub")}\n`);
    expect(fs.statSync(config).mode & 0o777).toBe(0o640);
    execFileSync(SSHD, ["-t", "-f", config]);
    expect(fs.readdirSync(work).filter((f) => f.includes(".tmp"))).toEqual([]);
  });
});
