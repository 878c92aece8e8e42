import { storeBackend } from "../../provider/enroll/backend";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { runEnrollmentPass } from "../../provider/enroll/pass";
import type { Candidate, InstallOutcome } from "../../provider/enroll/types";
import { JoinRefusal } from "../../provider/join/errors";
import { JoinMethodDefinition } from "../../provider/join/methods";
import { JoinService } from "../../provider/join/service";
import { AwsMatcher, discoveryServiceSection } from "../../provider/model";
import { outdatedNodes, rotationProgress } from "../../provider/runtime/rotation";
import { SqliteStore } from "../../provider/runtime/store";
import { completeRotation, generateCertAuthority, startRotation } from "../../provider/ssh";
import { newHostKey } from "../fixtures/joins";

/**
 * A CA rotation reaching enrolled nodes, against an in-memory store, the real join service and a fake cloud whose
 * "installer" joins with the instance's own host key, as the agentless installer does: the pass re-runs it on
 * every node holding the old key, the join re-certifies the same key once, and completion is gated on progress.
 */
const ACCOUNT = "123456789012";

// The fake iam method vouches for whatever instance the body names, as a real one would after its checks.
const iamMethod: JoinMethodDefinition = {
  needsChallenge: false,
  attest: async (body) => {
    const id = String(body.instance);
    return {
      nodeName: `${ACCOUNT}-${id}`,
      labels: { "discovery/account-id": ACCOUNT, "discovery/instance-id": id, "discovery/region": "us-east-1" },
      principals: [`${ACCOUNT}-${id}`],
    };
  },
};

describe("CA rotation through the enrollment pass", () => {
  let store: SqliteStore;
  let joins: JoinService;
  const hostKeys = new Map<string, string>();
  /** Instances whose installer cannot reach the runtime (the join never happens). */
  const unreachable = new Set<string>();
  /** Runs after each install (a race to simulate). */
  let afterInstall: () => Promise<void> = async () => undefined;
  const runs: string[] = [];

  const cloud: CloudEnrollment<AwsMatcher> = {
    async fetch() {
      const candidates: Candidate[] = [...hostKeys.keys()].map((id) => ({
        cloud: "aws",
        account: ACCOUNT,
        region: "us-east-1",
        instanceId: id,
        nodeName: `${ACCOUNT}-${id}`,
        state: "running",
        tags: {},
      }));
      return { candidates, scopes: [{ cloud: "aws", account: ACCOUNT, region: "us-east-1", instances: 1 }] };
    },
    async install(cands) {
      const out: InstallOutcome[] = [];
      for (const c of cands) {
        runs.push(`${c.instanceId}${c.rejoin ? " (rejoin)" : ""}`);
        if (!unreachable.has(c.instanceId))
          await joins
            .join(
              {
                method: "iam",
                token: "iam-token",
                host_public_key: hostKeys.get(c.instanceId),
                instance: c.instanceId,
              },
              "vm",
            )
            .catch((e: unknown) => {
              if (!(e instanceof JoinRefusal)) throw e;
            });
        out.push({ instanceId: c.instanceId, account: c.account, region: c.region, status: "succeeded" });
      }
      await afterInstall();
      return out;
    },
  };
  const pass = () =>
    runEnrollmentPass({
      matchers: discoveryServiceSection.parse({
        aws: [
          {
            types: ["ec2"],
            regions: ["us-east-1"],
            tags: { "*": "*" },
            install: { join_params: { token_name: "iam-token", method: "iam" } },
          },
        ],
      }),
      backend: storeBackend(store),
      runtime: { proxyAddr: "127.0.0.1:3080" },
      clouds: (name) => (name === "aws" ? (cloud as CloudEnrollment) : undefined),
      joinTimeoutMs: 300,
      pollMs: 20,
    });
  const statuses = async () => Object.fromEntries((await pass()).instances.map((i) => [i.instance_id, i.status]));
  const rotate = async (type: "host" | "user", step: typeof startRotation) => {
    const ca = (await store.getCertAuthority(type))!;
    expect(await store.updateCertAuthority(step(ca))).toBe(true);
  };

  beforeEach(async () => {
    store = new SqliteStore(":memory:");
    await store.migrate();
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
          spec: { roles: ["Node"], join_method: "iam", allow: [{ aws_account: ACCOUNT }] },
        },
      },
    ]);
    joins = new JoinService({
      methods: { iam: iamMethod },
      store,
      clusterName: "discovery.test",
      settings: {
        aws: { extraCaPems: [], stsEndpoint: "https://sts.amazonaws.com" },
        gcp: { issuer: "x", jwksUrl: "x" },
        azure: { extraCaPems: [], jwksUrl: "x" },
      },
      rateLimit: { requestsPerMinute: 100_000, burst: 100_000 },
      certificateTtlSeconds: 3600,
    });
    hostKeys.clear();
    unreachable.clear();
    runs.length = 0;
    afterInstall = async () => undefined;
    for (const id of ["i-0000000000000000a", "i-0000000000000000b"]) hostKeys.set(id, newHostKey());
    expect(Object.values(await statuses())).toEqual(["enrolled", "enrolled"]);
    runs.length = 0;
  });
  afterEach(() => store.close());

  it("re-runs the installer on every node when a rotation starts, once, and lets it complete", async () => {
    expect(Object.values(await statuses())).toEqual(["already_enrolled", "already_enrolled"]);
    expect(runs).toEqual([]);
    await rotate("user", startRotation);
    expect([...(await outdatedNodes(store))].sort()).toEqual([
      `${ACCOUNT}-i-0000000000000000a`,
      `${ACCOUNT}-i-0000000000000000b`,
    ]);
    expect(Object.values(await statuses())).toEqual(["enrolled", "enrolled"]);
    expect(runs).toEqual(["i-0000000000000000a (rejoin)", "i-0000000000000000b (rejoin)"]);
    const user = (await store.getCertAuthority("user"))!;
    expect((await rotationProgress(store, user)).pending).toEqual([]);
    // Reached: the next pass leaves them alone.
    expect(Object.values(await statuses())).toEqual(["already_enrolled", "already_enrolled"]);
    expect(runs).toHaveLength(2);
    // Completing drops the old key, which the nodes still trust: one more run removes it from their list.
    await rotate("user", completeRotation);
    expect(Object.values(await statuses())).toEqual(["enrolled", "enrolled"]);
    expect(runs).toHaveLength(4);
    expect(await outdatedNodes(store)).toEqual(new Set());
    const certs = await store.listNodeCertificates();
    expect(certs.map((c) => c.userCaKeys)).toEqual([[user.active.publicKey], [user.active.publicKey]]);
  });

  it("counts a node re-certified during the pass even when the rotation completes before the pass looks", async () => {
    await rotate("user", startRotation);
    afterInstall = async () => rotate("user", completeRotation);
    expect(Object.values(await statuses())).toEqual(["enrolled", "enrolled"]);
    // The completion left them trusting a dropped key: the next pass takes it out.
    afterInstall = async () => undefined;
    expect(Object.values(await statuses())).toEqual(["enrolled", "enrolled"]);
    expect(await outdatedNodes(store)).toEqual(new Set());
  });

  it("reports a node the rotation did not reach, with the fix, and keeps it pending for completion", async () => {
    unreachable.add("i-0000000000000000b");
    await rotate("host", startRotation);
    const result = await pass();
    const b = result.instances.find((i) => i.instance_id === "i-0000000000000000b")!;
    expect(b).toMatchObject({ status: "failed", failure_class: "installed-not-joined" });
    expect(b.reason).toMatch(/CA rotation/);
    expect(b.remediation).toMatch(/aws_iid_ttl/);
    const host = (await store.getCertAuthority("host"))!;
    expect((await rotationProgress(store, host)).pending).toEqual([
      { node: `${ACCOUNT}-i-0000000000000000b`, reason: "its host certificate is signed by the old host CA key" },
    ]);
  });

  it("re-certifies only the host key the node joined with, and only while its credentials are out of date", async () => {
    const join = (key: string) =>
      joins.join({ method: "iam", token: "iam-token", host_public_key: key, instance: "i-0000000000000000a" }, "x");
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => "accepted",
        (e: JoinRefusal) => e.code,
      );
    expect(await refusal(join(hostKeys.get("i-0000000000000000a")!))).toBe("already_joined");
    await rotate("host", startRotation);
    expect(await refusal(join(newHostKey()))).toBe("already_joined");
    expect(await refusal(join(hostKeys.get("i-0000000000000000a")!))).toBe("accepted");
    expect(await refusal(join(hostKeys.get("i-0000000000000000a")!))).toBe("already_joined");
  });
});
