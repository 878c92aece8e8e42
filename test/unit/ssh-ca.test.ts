import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  CertAuthority,
  CertificateRequest,
  completeRotation,
  editSshdConfig,
  generateCertAuthority,
  newEd25519KeyPair,
  signHostCertificate,
  signUserCertificate,
  SSHD_CONFIG_MARKER,
  startRotation,
  trustedPublicKeys,
} from "../../provider/ssh";
import * as sshpk from "sshpk";
import { ParsedKey, utils as sshUtils } from "ssh2";

let dir: string;
let seq = 0;
const write = (text: string, mode = 0o644) => {
  const file = path.join(dir, `f${++seq}`);
  fs.writeFileSync(file, text, { mode });
  return file;
};
// TZ=UTC because ssh-keygen -L prints validity in local time.
const keygen = (args: string[]) =>
  execFileSync("ssh-keygen", args, { encoding: "utf8", env: { ...process.env, TZ: "UTC" } });
const fingerprint = (publicKey: string) => keygen(["-l", "-f", write(publicKey + "\n")]).split(" ")[1];
const keyMaterial = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(" ");

/** A fresh subject key pair made by OpenSSH itself, as a node or user would have. */
function newKey(type = "ed25519"): { privateKey: string; publicKey: string } {
  const file = path.join(dir, `key${++seq}`);
  keygen(["-q", "-t", type, "-N", "", "-f", file]);
  return { privateKey: file, publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim() };
}

/** What `ssh-keygen -L` shows for a certificate, parsed into fields. */
interface Shown {
  type: string;
  keyId: string;
  signingCa: string;
  publicKey: string;
  valid: string;
  principals: string[];
  criticalOptions: string[];
  extensions: string[];
}

function show(cert: string): Shown {
  const out = keygen(["-L", "-f", write(cert + "\n")]);
  const field = (name: string) => new RegExp(`^\\s*${name}: (.*)$`, "m").exec(out)?.[1] ?? "";
  const list = (name: string) => {
    const m = new RegExp(`^\\s*${name}: ?(.*)\\n((?:\\s{16}.*\\n)*)`, "m").exec(out);
    if (!m || m[1].trim() === "(none)") return [];
    return m[2]
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  };
  return {
    type: field("Type"),
    keyId: field("Key ID"),
    signingCa: field("Signing CA").split(" ")[1],
    publicKey: field("Public key").split(" ")[1],
    valid: field("Valid"),
    principals: list("Principals"),
    criticalOptions: list("Critical Options"),
    extensions: list("Extensions"),
  };
}

const NOW = new Date("2030-01-02T03:04:05Z");
let hostCa: CertAuthority;
let userCa: CertAuthority;
let nodeKey: { privateKey: string; publicKey: string };

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-ssh-ca-"));
  hostCa = generateCertAuthority("host", NOW);
  userCa = generateCertAuthority("user", NOW);
  nodeKey = newKey();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("generateCertAuthority", () => {
  it("makes an Ed25519 CA whose private key OpenSSH reads back to the published public key", () => {
    expect(hostCa.type).toBe("host");
    expect(hostCa.previous).toEqual([]);
    expect(hostCa.active.createdAt).toBe("2030-01-02T03:04:05.000Z");
    expect(hostCa.active.publicKey).toMatch(/^ssh-ed25519 AAAA[A-Za-z0-9+/=]+ pulumi-discovery-host-ca@2030-01-02/);
    const derived = keygen(["-y", "-f", write(hostCa.active.privateKey, 0o600)]);
    expect(keyMaterial(derived)).toBe(keyMaterial(hostCa.active.publicKey));
  });

  it("makes a different key every time", () => {
    expect(generateCertAuthority("host").active.publicKey).not.toBe(generateCertAuthority("host").active.publicKey);
  });
});

describe("signHostCertificate", () => {
  it("issues a host certificate OpenSSH parses, with the principals, key id and skew-adjusted validity", () => {
    const principals = ["123456789012-i-0abc", "10.0.0.5", "ip-10-0-0-5.ec2.internal"];
    const cert = signHostCertificate(hostCa, {
      publicKey: nodeKey.publicKey,
      principals,
      ttlSeconds: 3600,
      keyId: "123456789012-i-0abc",
      now: NOW,
    });
    expect(cert).toMatch(/^ssh-ed25519-cert-v01@openssh\.com AAAA[A-Za-z0-9+/=]+$/);
    expect(show(cert)).toEqual({
      type: "ssh-ed25519-cert-v01@openssh.com host certificate",
      keyId: '"123456789012-i-0abc"',
      signingCa: fingerprint(hostCa.active.publicKey),
      publicKey: fingerprint(nodeKey.publicKey),
      valid: "from 2030-01-02T03:03:05 to 2030-01-02T04:04:05",
      principals,
      criticalOptions: [],
      extensions: [],
    });
  });

  it("certifies RSA host keys too", () => {
    const rsa = newKey("rsa");
    const cert = signHostCertificate(hostCa, {
      publicKey: rsa.publicKey,
      principals: ["n1"],
      ttlSeconds: 60,
      keyId: "n1",
    });
    expect(show(cert).type).toBe("ssh-rsa-cert-v01@openssh.com host certificate");
  });

  it("produces a signature OpenSSH checks: a certificate altered after signing is rejected", () => {
    const cert = signHostCertificate(hostCa, {
      publicKey: nodeKey.publicKey,
      principals: ["node-a"],
      ttlSeconds: 60,
      keyId: "node-a",
    });
    const blob = Buffer.from(cert.split(" ")[1], "base64");
    const at = blob.indexOf(Buffer.from("node-a"));
    blob[at + 5] = "b".charCodeAt(0);
    const r = spawnSync("ssh-keygen", ["-L", "-f", write(`${cert.split(" ")[0]} ${blob.toString("base64")}\n`)], {
      encoding: "utf8",
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/signature/i);
  });
});

describe("CA key types", () => {
  it("an ed25519 CA (signed with Node's crypto) and an adopted RSA CA (signed by sshpk) both sign what OpenSSH checks", () => {
    const rsaFile = newKey("rsa");
    const rsaPublic = fs.readFileSync(`${rsaFile.privateKey}.pub`, "utf8").trim();
    const rsaCa: CertAuthority = {
      type: "host",
      active: {
        publicKey: rsaPublic,
        privateKey: fs.readFileSync(rsaFile.privateKey, "utf8"),
        createdAt: NOW.toISOString(),
      },
      previous: [],
    };
    for (const ca of [hostCa, rsaCa]) {
      const cert = signHostCertificate(ca, { publicKey: nodeKey.publicKey, principals: ["n1"], ttlSeconds: 60, keyId: "n1" }); // prettier-ignore
      expect(show(cert).signingCa).toBe(fingerprint(ca.active.publicKey));
      const parsed = sshpk.parseCertificate(cert, "openssh");
      expect(parsed.isSignedByKey(sshpk.parseKey(ca.active.publicKey, "ssh"))).toBe(true);
      expect(parsed.isSignedByKey(sshpk.parseKey(generateCertAuthority("host").active.publicKey, "ssh"))).toBe(false);
    }
  });
});

describe("signUserCertificate", () => {
  it("issues a user certificate with the login names and the standard permit-* extensions", () => {
    const user = newKey();
    const cert = signUserCertificate(userCa, {
      publicKey: user.publicKey,
      principals: ["root", "ubuntu"],
      ttlSeconds: 8 * 3600,
      keyId: "alice@example.com",
      now: NOW,
    });
    expect(show(cert)).toEqual({
      type: "ssh-ed25519-cert-v01@openssh.com user certificate",
      keyId: '"alice@example.com"',
      signingCa: fingerprint(userCa.active.publicKey),
      publicKey: fingerprint(user.publicKey),
      valid: "from 2030-01-02T03:03:05 to 2030-01-02T11:04:05",
      principals: ["root", "ubuntu"],
      criticalOptions: [],
      extensions: [
        "permit-X11-forwarding",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-pty",
        "permit-user-rc",
      ],
    });
  });
});

describe("certificate request refusals", () => {
  const ok = (): CertificateRequest => ({
    publicKey: nodeKey.publicKey,
    principals: ["n1"],
    ttlSeconds: 60,
    keyId: "n1",
  });
  it.each<[string, Partial<CertificateRequest>, string, string]>([
    [
      "a garbage public key",
      { publicKey: "not a key" },
      "public_key_invalid",
      'publicKey: is not an OpenSSH public key; pass one line such as "ssh-ed25519 AAAA... comment", e.g. the contents of a .pub file (not the private key, not a certificate)',
    ],
    [
      "an empty public key",
      { publicKey: "" },
      "public_key_invalid",
      'publicKey: is not an OpenSSH public key; pass one line such as "ssh-ed25519 AAAA... comment", e.g. the contents of a .pub file (not the private key, not a certificate)',
    ],
    [
      "an empty principal list",
      { principals: [] },
      "principals_empty",
      "principals: must list at least one principal (an empty list would make the certificate valid for any name); pass the node name, private IP and hostnames",
    ],
    [
      "a principal with a space",
      { principals: ["n1", "web 1"] },
      "principal_invalid",
      'principals[1]: "web 1" contains a space, comma or control character; pass each name as its own entry',
    ],
    [
      "a principal with a comma",
      { principals: ["a,b"] },
      "principal_invalid",
      'principals[0]: "a,b" contains a space, comma or control character; pass each name as its own entry',
    ],
    ["an empty principal", { principals: ["n1", ""] }, "principal_invalid", "principals[1]: is empty; remove it"],
    [
      "a zero ttl",
      { ttlSeconds: 0 },
      "ttl_invalid",
      "ttlSeconds: must be a whole number of seconds greater than 0, got 0",
    ],
    [
      "a negative ttl",
      { ttlSeconds: -5 },
      "ttl_invalid",
      "ttlSeconds: must be a whole number of seconds greater than 0, got -5",
    ],
    [
      "a fractional ttl",
      { ttlSeconds: 1.5 },
      "ttl_invalid",
      "ttlSeconds: must be a whole number of seconds greater than 0, got 1.5",
    ],
    [
      "a ttl over 30 days",
      { ttlSeconds: 30 * 24 * 3600 + 1 },
      "ttl_invalid",
      "ttlSeconds: 2592001 exceeds the maximum of 2592000 (30 days); issue a shorter certificate and renew it",
    ],
    [
      "an empty key id",
      { keyId: " " },
      "key_id_invalid",
      "keyId: must not be empty; use a name that identifies the certificate in sshd logs, e.g. the node name",
    ],
    [
      "a key id with a newline",
      { keyId: "n1\nAccepted publickey for root" },
      "key_id_invalid",
      "keyId: must not contain control characters such as newlines, which would forge extra sshd log lines",
    ],
  ])("refuses %s", (_name, change, code, message) => {
    const req = { ...ok(), ...change };
    expect(() => signHostCertificate(hostCa, req)).toThrow(message);
    expect(() => signHostCertificate(hostCa, req)).toThrow(expect.objectContaining({ code, message }));
  });

  it("accepts exactly 30 days", () => {
    expect(() => signHostCertificate(hostCa, { ...ok(), ttlSeconds: 30 * 24 * 3600 })).not.toThrow();
  });

  it("refuses a certificate line or a private key as the subject key", () => {
    const cert = signHostCertificate(hostCa, ok());
    expect(() => signHostCertificate(hostCa, { ...ok(), publicKey: cert })).toThrow(/^publicKey: is not an OpenSSH/);
    const priv = fs.readFileSync(nodeKey.privateKey, "utf8");
    expect(() => signHostCertificate(hostCa, { ...ok(), publicKey: priv })).toThrow(/^publicKey: is not an OpenSSH/);
  });

  it("names the login names for an empty user principal list", () => {
    expect(() => signUserCertificate(userCa, { ...ok(), principals: [] })).toThrow(
      'principals: must list at least one principal (an empty list would make the certificate valid for any name); pass the login names, e.g. ["root"]',
    );
  });

  it("refuses to sign with the wrong kind of CA", () => {
    expect(() => signHostCertificate(userCa, ok())).toThrow(
      'ca.type: is "user", but host certificates must be signed by the host CA; pass the host CertAuthorityRecord',
    );
    expect(() => signUserCertificate(hostCa, ok())).toThrow(
      'ca.type: is "host", but user certificates must be signed by the user CA; pass the user CertAuthorityRecord',
    );
  });
});

describe("rotation", () => {
  const userReq = (): CertificateRequest => ({
    publicKey: nodeKey.publicKey,
    principals: ["root"],
    ttlSeconds: 60,
    keyId: "u",
  });
  it("signs with the new key and keeps the old key trusted until the rotation completes", () => {
    const stored = { ...generateCertAuthority("user", NOW), revision: 7 };
    const oldKey = stored.active;
    const rotating = startRotation(stored, new Date("2030-02-01T00:00:00Z"));

    expect(rotating.revision).toBe(7); // the caller bumps it when writing
    expect(stored.active).toBe(oldKey); // the input is not mutated
    expect(rotating.active.publicKey).not.toBe(oldKey.publicKey);
    expect(rotating.active.createdAt).toBe("2030-02-01T00:00:00.000Z");
    expect(rotating.previous).toEqual([oldKey]);
    expect(trustedPublicKeys(rotating)).toEqual([rotating.active.publicKey, oldKey.publicKey]);

    const cert = signUserCertificate(rotating, { ...userReq(), now: NOW });
    expect(show(cert).signingCa).toBe(fingerprint(rotating.active.publicKey));

    const done = completeRotation(rotating);
    expect(done.previous).toEqual([]);
    expect(done.active).toEqual(rotating.active);
    expect(trustedPublicKeys(done)).toEqual([rotating.active.publicKey]);
    expect(trustedPublicKeys(rotating)).toHaveLength(2);
  });

  it("refuses to start a rotation while one is in progress", () => {
    const rotating = startRotation(generateCertAuthority("host"));
    expect(() => startRotation(rotating)).toThrow(
      expect.objectContaining({
        code: "rotation_in_progress",
        message:
          "host CA: a rotation is already in progress; call completeRotation once certificates signed by the previous key are reissued, then start the next rotation",
      }),
    );
    expect(() => startRotation(completeRotation(rotating))).not.toThrow();
  });
});

describe("editSshdConfig", () => {
  const settings = {
    hostKeyPath: "/etc/ssh/ssh_host_ed25519_key",
    hostCertificatePath: "/etc/ssh/ssh_host_ed25519_key-cert.pub",
    trustedUserCaKeysPath: "/etc/ssh/pulumi-discovery-user-ca.pub",
  };
  const block = [
    SSHD_CONFIG_MARKER,
    "HostKey /etc/ssh/ssh_host_ed25519_key",
    "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub",
    "TrustedUserCAKeys /etc/ssh/pulumi-discovery-user-ca.pub",
  ];
  const original = [
    "# operator's comment, kept as is  ",
    "Port 22",
    "PasswordAuthentication   no",
    "",
    "Match User deploy",
    "\tForceCommand /bin/true",
    "Match all",
    "",
  ].join("\n");

  it("puts the block before the first Match and leaves every other line byte-for-byte", () => {
    const edited = editSshdConfig(original, settings);
    expect(edited).toBe([...original.split("\n").slice(0, 4), ...block, ...original.split("\n").slice(4)].join("\n"));
  });

  it("is idempotent, and replaces its own lines when the paths change", () => {
    const once = editSshdConfig(original, settings);
    expect(editSshdConfig(once, settings)).toBe(once);
    const moved = editSshdConfig(once, { ...settings, trustedUserCaKeysPath: "/srv/ca keys.pub" });
    expect(moved.split(SSHD_CONFIG_MARKER)).toHaveLength(2);
    expect(moved).toContain('TrustedUserCAKeys "/srv/ca keys.pub"\nMatch User deploy');
    expect(moved).not.toContain("pulumi-discovery-user-ca.pub");
    expect(editSshdConfig(moved, settings)).toBe(once);
  });

  it("appends at the end when there is no Match, adding the missing final newline", () => {
    expect(editSshdConfig("Port 22", settings)).toBe(["Port 22", ...block, ""].join("\n"));
    expect(editSshdConfig("", settings)).toBe([...block, ""].join("\n"));
  });

  it("goes before an Include or an earlier TrustedUserCAKeys, because sshd keeps the first value it reads", () => {
    const debian = "# header\nInclude /etc/ssh/sshd_config.d/*.conf\nPort 22\n";
    expect(editSshdConfig(debian, settings)).toBe(
      ["# header", ...block, "Include /etc/ssh/sshd_config.d/*.conf", "Port 22", ""].join("\n"),
    );
    const own = "Port 22\ntrustedusercakeys /etc/ssh/old-ca.pub\nMatch all\n";
    expect(editSshdConfig(own, settings)).toBe(
      ["Port 22", ...block, "trustedusercakeys /etc/ssh/old-ca.pub", "Match all", ""].join("\n"),
    );
  });

  it("keeps an operator's HostKey that directly follows the managed block", () => {
    const once = editSshdConfig("Port 22\n", settings) + "HostKey /etc/ssh/ssh_host_rsa_key\n";
    expect(editSshdConfig(once, settings)).toBe(once);
  });

  it("moves its block before a Match the operator added above it", () => {
    const once = editSshdConfig("Port 22\n", settings);
    expect(once).toBe(["Port 22", ...block, ""].join("\n"));
    expect(editSshdConfig("Match all\n" + once, settings)).toBe([...block, "Match all", "Port 22", ""].join("\n"));
  });

  it("keeps CRLF line endings", () => {
    const edited = editSshdConfig("Port 22\r\nMatch all\r\n", settings);
    expect(edited).toBe(["Port 22", ...block, "Match all", ""].join("\r\n"));
    expect(editSshdConfig(edited, settings)).toBe(edited);
  });

  it("refuses relative paths and paths sshd_config cannot express", () => {
    expect(() => editSshdConfig("", { ...settings, hostKeyPath: "ssh_host_key" })).toThrow(
      'hostKeyPath: must be an absolute path, got "ssh_host_key"',
    );
    expect(() => editSshdConfig("", { ...settings, hostCertificatePath: "/etc/x\nPermitRootLogin yes" })).toThrow(
      'hostCertificatePath: "/etc/x\\nPermitRootLogin yes" contains a double quote or control character, which sshd_config cannot express; choose another path',
    );
  });
});

describe("newEd25519KeyPair", () => {
  // ssh2's own generator wrote about 1 key in 250 that its parser then refused; 3,000 keys catch that
  // with odds above 99.99%.
  test("every key it makes is read back by ssh2 and by sshpk, and the public line matches the private key", () => {
    for (let i = 0; i < 3000; i++) {
      const pair = newEd25519KeyPair();
      const parsed = sshUtils.parseKey(pair.privateKey);
      if (parsed instanceof Error) throw new Error(`key ${i}: ssh2 refused it: ${parsed.message}`);
      const fromPrivate = sshpk.parsePrivateKey(pair.privateKey, "openssh").toPublic();
      expect(pair.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/=]+$/);
      expect(sshpk.parseKey(pair.publicKey, "ssh").fingerprint("sha256").toString()).toBe(
        fromPrivate.fingerprint("sha256").toString(),
      );
      // The public line is the private key's own: a signature made with the private key verifies against it.
      if (i < 50) {
        const data = Buffer.from(`challenge ${i}`);
        const signature = parsed.sign(data);
        expect(sshUtils.parseKey(pair.publicKey)).not.toBeInstanceOf(Error);
        expect((sshUtils.parseKey(pair.publicKey) as ParsedKey).verify(data, signature)).toBe(true);
      }
    }
  });
});
