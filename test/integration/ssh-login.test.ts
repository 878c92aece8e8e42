/**
 * Proves the CA with real OpenSSH: a real sshd configured through editSshdConfig, and the real ssh client,
 * logging in as root on 127.0.0.1 with certificates this package signed.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import {
  CertAuthority,
  completeRotation,
  editSshdConfig,
  generateCertAuthority,
  signHostCertificate,
  signUserCertificate,
  startRotation,
  trustedPublicKeys,
} from "../../provider/ssh";

const SSHD = "/usr/sbin/sshd";
let dir: string;
let seq = 0;
const running = new Set<ChildProcess>();

const write = (name: string, text: string, mode = 0o600) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode });
  return file;
};

/** A key pair made by ssh-keygen, as a real node or user has. */
function newKey(name: string): { privateKey: string; publicKey: string } {
  const file = path.join(dir, `${name}-${++seq}`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return { privateKey: file, publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim() };
}

/** A free loopback port; sshd binds it right after, and nothing else on the box races for ports in tests. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A running sshd with its log (it runs with -e, so everything it logs arrives on stderr). */
interface Sshd {
  port: number;
  log: () => string;
  stop: () => Promise<void>;
}

/** What the sshd under test is given: its host key and certificate, and the user CA keys it trusts. */
interface SshdFiles {
  hostKey: string;
  hostCertificate: string;
  trustedUserCaKeys: string;
}

/** Starts sshd in the foreground on `port` with a config written through editSshdConfig, once it listens. */
async function startSshd(files: SshdFiles, port?: number): Promise<Sshd> {
  const p = port ?? (await freePort());
  const base = [
    "# test sshd: loopback only, certificates only",
    "ListenAddress 127.0.0.1",
    `Port ${p}`,
    `PidFile ${path.join(dir, `sshd-${p}.pid`)}`,
    "UsePAM no",
    "StrictModes no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    // No authorized_keys: a login can only succeed through the user CA.
    "AuthorizedKeysFile none",
    "LogLevel VERBOSE",
    // Settings after a Match apply only to it: root could not log in if the block landed below.
    "Match User nobody",
    "\tPermitTTY no",
    "",
  ].join("\n");
  const config = write(
    `sshd_config-${p}`,
    editSshdConfig(base, {
      hostKeyPath: files.hostKey,
      hostCertificatePath: files.hostCertificate,
      trustedUserCaKeysPath: files.trustedUserCaKeys,
    }),
    0o644,
  );
  execFileSync(SSHD, ["-t", "-f", config]);

  const proc = spawn(SSHD, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  running.add(proc);
  let log = "";
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  exited.then(() => running.delete(proc));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not listen on ${p} within 10s:\n${log}`)), 10_000);
    proc.stderr!.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes(`Server listening on 127.0.0.1 port ${p}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited with ${code} before listening:\n${log}`));
    });
  });
  return {
    port: p,
    log: () => log,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** Stops `sshd` and starts it again on the same port, so it rereads its config, host certificate and CA keys. */
async function restart(sshd: Sshd, files: SshdFiles): Promise<Sshd> {
  await sshd.stop();
  return startSshd(files, sshd.port);
}

/** Result of one `ssh` run. */
interface Login {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Writes a known_hosts file trusting each key as the host CA for [127.0.0.1]:port. */
function knownHosts(port: number, caKeys: string[]): string {
  return write(`known_hosts-${++seq}`, caKeys.map((k) => `@cert-authority [127.0.0.1]:${port} ${k}\n`).join(""));
}

/** Runs the real OpenSSH client, asynchronously so the sshd log keeps draining meanwhile. */
function ssh(port: number, opts: { key: string; cert: string; knownHosts: string; user?: string }): Promise<Login> {
  const certFile = write(`cert-${++seq}.pub`, opts.cert + "\n", 0o644);
  const args = [
    "-F",
    "/dev/null",
    "-p",
    String(port),
    "-i",
    opts.key,
    "-o",
    `CertificateFile=${certFile}`,
    "-o",
    `UserKnownHostsFile=${opts.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=10",
    `${opts.user ?? "root"}@127.0.0.1`,
    "echo",
    "logged-in",
  ];
  const env = { ...process.env };
  delete env.SSH_AUTH_SOCK; // an agent could offer keys we did not mean to test
  return new Promise((resolve, reject) => {
    const proc = spawn("ssh", args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    proc.once("error", reject);
    proc.once("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs `ssh` and returns what sshd logged about that one attempt alongside the client's result. */
async function attempt(sshd: Sshd, opts: Parameters<typeof ssh>[1]): Promise<Login & { sshdLog: string }> {
  const before = sshd.log().length;
  const r = await ssh(sshd.port, opts);
  await new Promise((res) => setTimeout(res, 200)); // sshd's last lines about the attempt may trail the client exit
  return { ...r, sshdLog: sshd.log().slice(before) };
}

const HOST_PRINCIPALS = ["test-node", "127.0.0.1", "localhost"];
let hostCa: CertAuthority;
let userCa: CertAuthority;
let user: { privateKey: string; publicKey: string };
let files: SshdFiles;
let sshd: Sshd;
let trustHostCa: string;

const userCert = (ca: CertAuthority, extra: { principals?: string[]; ttlSeconds?: number; now?: Date } = {}) =>
  signUserCertificate(ca, {
    publicKey: user.publicKey,
    principals: extra.principals ?? ["root"],
    ttlSeconds: extra.ttlSeconds ?? 600,
    keyId: "alice",
    now: extra.now,
  });

beforeAll(async () => {
  // sshd's privilege separation needs this directory; containers often lack it.
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-ssh-login-"));
  hostCa = generateCertAuthority("host");
  userCa = generateCertAuthority("user");
  user = newKey("alice");
  const hostKey = newKey("host");
  files = {
    hostKey: hostKey.privateKey,
    hostCertificate: write(
      "host-cert.pub",
      signHostCertificate(hostCa, {
        publicKey: hostKey.publicKey,
        principals: HOST_PRINCIPALS,
        ttlSeconds: 3600,
        keyId: "test-node",
      }) + "\n",
      0o644,
    ),
    trustedUserCaKeys: write("user-ca.pub", trustedPublicKeys(userCa).join("\n") + "\n", 0o644),
  };
  sshd = await startSshd(files);
  trustHostCa = knownHosts(sshd.port, trustedPublicKeys(hostCa));
});

afterAll(async () => {
  await Promise.all([...running].map((p) => new Promise((res) => (p.once("exit", res), p.kill("SIGTERM")))));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// Backstop for a crashed run: never leave an sshd listening after jest exits.
process.once("exit", () => running.forEach((p) => p.kill("SIGKILL")));

describe("login with certificates against a real sshd", () => {
  it("logs in as root with a user certificate, the client verifying the host certificate", async () => {
    const r = await attempt(sshd, { key: user.privateKey, cert: userCert(userCa), knownHosts: trustHostCa });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("logged-in\n");
    expect(r.status).toBe(0);
    expect(r.sshdLog).toMatch(
      /Accepted publickey for root from 127\.0\.0\.1 port \d+ ssh2: ED25519-CERT SHA256:\S+ ID alice/,
    );
  });

  it("refuses a user certificate signed by an unknown CA", async () => {
    const stranger = generateCertAuthority("user");
    const r = await attempt(sshd, { key: user.privateKey, cert: userCert(stranger), knownHosts: trustHostCa });
    expect(r.status).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("root@127.0.0.1: Permission denied (publickey).");
    expect(r.sshdLog).not.toContain("Accepted");
  });

  it("refuses an expired user certificate", async () => {
    const anHourAgo = new Date(Date.now() - 3600_000);
    const cert = userCert(userCa, { ttlSeconds: 60, now: anHourAgo });
    const r = await attempt(sshd, { key: user.privateKey, cert, knownHosts: trustHostCa });
    expect(r.status).toBe(255);
    expect(r.stderr).toContain("Permission denied (publickey).");
    expect(r.sshdLog).toContain("Certificate invalid: expired");
  });

  it("refuses a user certificate whose principals do not include root", async () => {
    const cert = userCert(userCa, { principals: ["ubuntu", "admin"] });
    const r = await attempt(sshd, { key: user.privateKey, cert, knownHosts: trustHostCa });
    expect(r.status).toBe(255);
    expect(r.stderr).toContain("Permission denied (publickey).");
    expect(r.sshdLog).toContain("Certificate invalid: name is not a listed principal");
  });

  it("refuses the host when known_hosts trusts another CA", async () => {
    const other = generateCertAuthority("host");
    const r = await attempt(sshd, {
      key: user.privateKey,
      cert: userCert(userCa),
      knownHosts: knownHosts(sshd.port, trustedPublicKeys(other)),
    });
    expect(r.status).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`No ED25519 host key is known for [127.0.0.1]:${sshd.port}`);
    expect(r.stderr).toContain("Host key verification failed.");
  });

  it("refuses a host whose certificate does not name 127.0.0.1", async () => {
    const hostKey = newKey("other-host");
    const wrongNames: SshdFiles = {
      ...files,
      hostKey: hostKey.privateKey,
      hostCertificate: write(
        "host-cert-wrong-names.pub",
        signHostCertificate(hostCa, {
          publicKey: hostKey.publicKey,
          principals: ["test-node", "10.0.0.5"],
          ttlSeconds: 3600,
          keyId: "test-node",
        }) + "\n",
        0o644,
      ),
    };
    const other = await startSshd(wrongNames);
    try {
      const r = await attempt(other, {
        key: user.privateKey,
        cert: userCert(userCa),
        knownHosts: knownHosts(other.port, trustedPublicKeys(hostCa)),
      });
      expect(r.status).toBe(255);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("Certificate invalid: name is not a listed principal");
      expect(r.stderr).toContain("Host key verification failed.");
    } finally {
      await other.stop();
    }
  });
});

describe("rotation against a real sshd", () => {
  it("keeps old user certificates working during a rotation and refuses them once it completes", async () => {
    const oldCert = userCert(userCa);
    const rotating = startRotation(userCa);
    const newCert = userCert(rotating);
    const login = (cert: string) => attempt(sshd, { key: user.privateKey, cert, knownHosts: trustHostCa });

    // sshd still trusts only the old key: the new key's certificate must not work yet (proves the file matters).
    expect((await login(newCert)).status).toBe(255);

    fs.writeFileSync(files.trustedUserCaKeys, trustedPublicKeys(rotating).join("\n") + "\n");
    sshd = await restart(sshd, files);
    for (const cert of [oldCert, newCert]) {
      const r = await login(cert);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("logged-in\n");
    }

    const done = completeRotation(rotating);
    fs.writeFileSync(files.trustedUserCaKeys, trustedPublicKeys(done).join("\n") + "\n");
    sshd = await restart(sshd, files);
    const refused = await login(oldCert);
    expect(refused.status).toBe(255);
    expect(refused.stderr).toContain("Permission denied (publickey).");
    const accepted = await login(newCert);
    expect(accepted.stdout).toBe("logged-in\n");
    expect(accepted.status).toBe(0);
    userCa = done; // what sshd trusts from here on
  });

  it("lets clients that trust both host CA keys accept a host certificate from the new key", async () => {
    const rotating = startRotation(hostCa);
    const hostKey = newKey("rotated-host");
    const rotated: SshdFiles = {
      ...files,
      hostKey: hostKey.privateKey,
      hostCertificate: write(
        "host-cert-rotated.pub",
        signHostCertificate(rotating, {
          publicKey: hostKey.publicKey,
          principals: HOST_PRINCIPALS,
          ttlSeconds: 3600,
          keyId: "test-node",
        }) + "\n",
        0o644,
      ),
    };
    const other = await startSshd(rotated);
    try {
      const cert = userCert(userCa);
      const trustingBoth = knownHosts(other.port, trustedPublicKeys(rotating));
      const ok = await attempt(other, { key: user.privateKey, cert, knownHosts: trustingBoth });
      expect(ok.stderr).toBe("");
      expect(ok.stdout).toBe("logged-in\n");

      const oldOnly = await attempt(other, {
        key: user.privateKey,
        cert,
        knownHosts: knownHosts(other.port, trustedPublicKeys(hostCa)),
      });
      expect(oldOnly.stderr).toContain("Host key verification failed.");
    } finally {
      await other.stop();
    }
  });
});
