import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type Database from "better-sqlite3";
import { JoinRefusal } from "../../provider/join/errors";
import { Attested, JoinSettings, JoinMethodDefinition } from "../../provider/join/methods";
import { JoinService } from "../../provider/join/service";
import "../../provider/join/tokens";
import { openStore, Store } from "../../provider/runtime/store";
import { generateCertAuthority } from "../../provider/ssh";
import { newHostKey } from "../fixtures/joins";

/**
 * The join service's order of checks, against a real SQLite store in a temp dir and fake attestors: what a
 * malformed request must not reach (the token, the challenge, the cloud), and what a refusal must not leave behind.
 */
const SETTINGS: JoinSettings = {
  aws: { extraCaPems: [], stsEndpoint: "https://sts.amazonaws.com" },
  gcp: { issuer: "https://accounts.google.com", jwksUrl: "https://www.googleapis.com/oauth2/v3/certs" },
  azure: { extraCaPems: [], jwksUrl: "https://login.microsoftonline.com/common/discovery/keys" },
};
const SECRET = "tok-unit-5d2a9c8e7f";

/** What the fake iam attestor was asked, and what it answers. */
const calls = { validate: 0, attest: 0 };
let attestAnswer: () => Promise<Attested>;
const iamMethod: JoinMethodDefinition = {
  needsChallenge: true,
  validate: (body) => {
    calls.validate++;
    if (body.sts_request !== "well-formed")
      throw new JoinRefusal("sts_request_malformed", "sts_request is not well formed", 400);
  },
  attest: async () => {
    calls.attest++;
    return attestAnswer();
  },
};

async function refusal(p: Promise<unknown>): Promise<{ code: string; status: number }> {
  const e = await p.then(
    () => new Error("expected a refusal"),
    (err: unknown) => err,
  );
  if (e instanceof JoinRefusal) return { code: e.code, status: e.status };
  throw e;
}

describe("JoinService: what a refused join leaves untouched", () => {
  let dir: string;
  let store: Store;
  let service: JoinService;
  let challenge: string;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-svc-"));
    store = await openStore({ type: "sqlite", path: path.join(dir, "state.db") });
    await store.initCertAuthority(generateCertAuthority("host"));
    await store.initCertAuthority(generateCertAuthority("user"));
    await store.putResources([
      {
        kind: "token",
        key: "iam-token",
        doc: {
          kind: "token",
          version: "v2",
          metadata: { name: "iam-token" },
          spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: "123456789012" }] },
        },
      },
    ]);
    service = new JoinService({
      methods: { iam: iamMethod },
      store,
      clusterName: "discovery.test",
      settings: SETTINGS,
      rateLimit: { requestsPerMinute: 10_000, burst: 10_000 },
      certificateTtlSeconds: 3600,
    });
    ({ challenge } = await service.challenge({ method: "iam", token: "iam-token" }, "test"));
    calls.validate = calls.attest = 0;
    attestAnswer = async () => ({ nodeName: "123456789012-i-0abc", labels: {}, principals: ["123456789012-i-0abc"] });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const iamJoin = (over: Record<string, unknown> = {}) =>
    service.join(
      {
        method: "iam",
        token: "iam-token",
        host_public_key: newHostKey(),
        challenge,
        sts_request: "well-formed",
        ...over,
      },
      "test",
    );

  it.each([
    ["a truncated key", "ssh-ed25519 AAAA"],
    ["a cut-off blob", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"],
    ["an rsa blob labelled ssh-ed25519", () => `ssh-ed25519 ${newHostKey("rsa").split(" ")[1]}`],
    ["an ed25519 blob labelled ssh-rsa", () => `ssh-rsa ${newHostKey().split(" ")[1]}`],
  ])("%s is bad_host_key before validation, challenge and attestation", async (_, key) => {
    const host_public_key = typeof key === "function" ? key() : key;
    expect(await refusal(iamJoin({ host_public_key }))).toEqual({ code: "bad_host_key", status: 400 });
    expect(calls).toEqual({ validate: 0, attest: 0 });
    expect(await store.listNodes()).toEqual([]);
    await iamJoin(); // the challenge was not consumed
    expect(calls.attest).toBe(1);
  });

  it("a request the method's check refuses leaves the challenge unused and the attestor uncalled", async () => {
    expect(await refusal(iamJoin({ sts_request: "forged" }))).toEqual({ code: "sts_request_malformed", status: 400 });
    expect(calls).toEqual({ validate: 1, attest: 0 });
    await iamJoin();
    expect(calls.attest).toBe(1);
  });

  it("a principal the certificate cannot carry is a 400 refusal, and no node is stored", async () => {
    attestAnswer = async () => ({ nodeName: "n1", labels: {}, principals: ["two words"] });
    expect(await refusal(iamJoin())).toEqual({ code: "certificate_principal_invalid", status: 400 });
    expect(await store.listNodes()).toEqual([]);
  });

  it("an attestor's refusal stores nothing", async () => {
    attestAnswer = async () => {
      throw new JoinRefusal("iam_no_matching_rule", "no rule", 403);
    };
    expect(await refusal(iamJoin())).toEqual({ code: "iam_no_matching_rule", status: 403 });
    expect(await store.listNodes()).toEqual([]);
  });

  it("an accepted join stores its node, certificate record and audit row", async () => {
    const joined = await iamJoin();
    expect(joined.node_name).toBe("123456789012-i-0abc");
    expect(await store.getNode("123456789012-i-0abc")).toMatchObject({ joinMethod: "iam", token: "iam-token" });
    expect(await store.getNodeCertificate("123456789012-i-0abc")).toMatchObject({
      userCaKeys: joined.user_ca_public_keys,
    });
    expect(await store.listAudit(10)).toMatchObject([
      { type: "join.accepted", source: "test", method: "iam", node: "123456789012-i-0abc" },
    ]);
  });

  it("a join whose writes fail part-way leaves no node, certificate record or audit row, and may be retried", async () => {
    // A trigger on the store's own connection makes the audit insert fail, as a full disk would: after the node and
    // certificate writes of the same transaction.
    const db = (store as unknown as { db: Database.Database }).db;
    db.exec("CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    // Read by its message: better-sqlite3's SqliteError comes from the realm of the first test file that loaded the
    // addon in this jest worker, so in later files it is no `Error` to jest's toThrow (a full unit run showed it).
    const refused = await iamJoin().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String((refused as { message?: unknown })?.message)).toContain("disk full");
    expect(await store.listNodes()).toEqual([]);
    expect(await store.getNodeCertificate("123456789012-i-0abc")).toBeUndefined();
    expect(await store.listAudit(10)).toEqual([]);
    db.exec("DROP TRIGGER no_audit");
    ({ challenge } = await service.challenge({ method: "iam", token: "iam-token" }, "test"));
    expect((await iamJoin()).node_name).toBe("123456789012-i-0abc"); // not "already joined"
  });

  it("token method: the node is named after the decoded key, whatever its comment or spacing", async () => {
    await store.putResources([
      {
        kind: "token",
        key: (await import("../../provider/join/tokens")).secretTokenKey(SECRET),
        doc: {
          kind: "token",
          version: "v2",
          metadata: { name: "(secret)" },
          spec: { roles: ["Node"], join_method: "token" },
        },
      },
    ]);
    const [type, blob] = newHostKey().split(" ");
    const first = await service.join({ method: "token", token: SECRET, host_public_key: `${type} ${blob} a` }, "t");
    expect(first.node_name).toMatch(/^node-[0-9a-f]{16}$/);
    expect(
      await refusal(
        service.join({ method: "token", token: SECRET, host_public_key: `  ${type} ${blob} other-comment ` }, "t"),
      ),
    ).toEqual({ code: "already_joined", status: 403 });
    expect((await store.listNodes()).map((n) => n.hostPublicKey)).toEqual([`${type} ${blob}`]);
  });
});
