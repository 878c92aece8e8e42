import { createPublicKey, verify } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { matchesFilter } from "../../provider/sandbox/gcp-api";
import { loadOrCreateIssuer, rsaThumbprint } from "../../provider/sandbox/gcp-issuer";
import { parseGcpLaunchOptions } from "../../provider/sandbox/gcp-launch-options";
import { activeSshKeys, osLoginEnabled } from "../../provider/sandbox/gcp-vm";
import type { GcpVm } from "../../provider/sandbox/gcp-world";

/** The sandbox GCP world's pure parts: the guest agent's key rules, Compute's filter subset, the issuer. */
describe("sandbox GCP guest and issuer", () => {
  const now = new Date("2026-06-01T12:00:00Z");
  const meta = (o: object) => `google-ssh ${JSON.stringify(o)}`;

  it("keeps plain keys and unexpired google-ssh keys, as the guest agent does", () => {
    const value = [
      "alice:ssh-ed25519 AAAAC3Nza alice@laptop",
      `bob:ssh-ed25519 AAAAB ${meta({ userName: "bob", expireOn: "2026-06-01T12:10:00Z" })}`,
      `carol:ssh-ed25519 AAAAC ${meta({ userName: "carol", expireOn: "2026-06-01T11:59:59Z" })}`,
      `dave:ssh-ed25519 AAAAD ${meta({ userName: "dave", expireOn: "not a date" })}`,
      "google-ssh without a user",
      "",
    ].join("\n");
    expect(activeSshKeys(value, now)).toEqual([
      { user: "alice", key: "ssh-ed25519 AAAAC3Nza" },
      { user: "bob", key: "ssh-ed25519 AAAAB" },
    ]);
  });

  it("reads enable-oslogin as GCE does", () => {
    expect(osLoginEnabled([{ key: "enable-oslogin", value: "TRUE" }])).toBe(true);
    expect(osLoginEnabled([{ key: "enable-oslogin", value: "false" }])).toBe(false);
    expect(osLoginEnabled([])).toBe(false);
  });

  it("filters on labels, status and name, and refuses what it cannot read", () => {
    const vm = { name: "web-1", status: "RUNNING", id: "1", labels: { env: "dev" } } as unknown as GcpVm;
    expect(matchesFilter('labels.env = "dev"', vm)).toBe(true);
    expect(matchesFilter("(labels.env = dev) AND (status = RUNNING)", vm)).toBe(true);
    expect(matchesFilter("labels.env != dev", vm)).toBe(false);
    expect(matchesFilter("name = web-2", vm)).toBe(false);
    expect(() => matchesFilter("labels.env ~ dev", vm)).toThrow(/filter/);
  });

  it("signs RS256 tokens whose kid is the key's RFC 7638 thumbprint, and keeps its key across restarts", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pd-gcp-issuer-")), "gcp-issuer.key");
    const issuer = loadOrCreateIssuer(file);
    expect(fs.readFileSync(file, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(loadOrCreateIssuer(file).kid).toBe(issuer.kid);
    const jwk = issuer.jwks.keys[0];
    expect(jwk.kid).toBe(rsaThumbprint(jwk));
    const [h, p, sig] = issuer.sign({ aud: "x" }).split(".");
    expect(JSON.parse(Buffer.from(h, "base64url").toString())).toEqual({ alg: "RS256", kid: issuer.kid, typ: "JWT" });
    expect(JSON.parse(Buffer.from(p, "base64url").toString())).toEqual({
      aud: "x",
      iss: "https://accounts.google.com",
    });
    const key = createPublicKey({ key: { ...jwk }, format: "jwk" });
    expect(verify("sha256", Buffer.from(`${h}.${p}`), key, Buffer.from(sig, "base64url"))).toBe(true);
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  });

  it("validates launch options with GCP's rules", () => {
    expect(parseGcpLaunchOptions({ project: "my-proj-1", zone: "us-central1-a" })).toMatchObject({
      count: 1,
      state: "running",
      oslogin: false,
      labels: {},
    });
    expect(() => parseGcpLaunchOptions({ project: "my-proj-1", zone: "us-central1" })).toThrow(/zone/);
    expect(() => parseGcpLaunchOptions({ project: "my-proj-1", zone: "us-central1-a", labels: { Env: "x" } })).toThrow(
      /label key/,
    );
    expect(() => parseGcpLaunchOptions({ project: "my-proj-1", zone: "us-central1-a", state: "stopped" })).toThrow(
      /terminated/,
    );
  });
});
