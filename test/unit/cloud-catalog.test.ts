import { CLOUD_PLUGINS, nodeInstance } from "../../provider/clouds";
import { storeBackend } from "../../provider/enroll/backend";
import type { CloudEnrollment } from "../../provider/enroll/clouds";
import { runEnrollmentPass } from "../../provider/enroll/pass";
import type { Candidate } from "../../provider/enroll/types";
import { CLOUDS } from "../../provider/model";
import { SqliteStore } from "../../provider/runtime/store";

/**
 * The cloud catalog as the core sees it: a pass over a fake cloud counts commands by the cloud's own failure-class
 * table (nothing in enroll/ names a class), and a node's labels name its instance by the cloud's identity.
 */
const ACCOUNT = "123456789012";
const candidate = (id: string): Candidate => ({
  cloud: "aws",
  account: ACCOUNT,
  region: "us-east-1",
  instanceId: id,
  nodeName: `${ACCOUNT}-${id}`,
  state: "running",
  tags: {},
});

/** A fake cloud whose installer fails every instance with the class named by its id. */
const fakeCloud: CloudEnrollment = {
  failureClasses: {
    "agent-missing": { commandSent: false, summary: "found before sending" },
    "script-broke": { commandSent: true, summary: "ran and failed" },
  },
  fetch: async () => ({
    candidates: ["i-agent-missing", "i-script-broke", "i-unlisted-class"].map(candidate),
    scopes: [{ cloud: "aws", account: ACCOUNT, region: "us-east-1", instances: 3 }],
  }),
  install: async (cs) =>
    cs.map((c) => ({
      instanceId: c.instanceId,
      account: c.account,
      region: c.region,
      status: "failed" as const,
      failureClass: c.instanceId.slice(2),
      reason: "fake",
    })),
};

describe("the cloud catalog", () => {
  it("has an entry for every cloud of model.CLOUDS, and every implemented cloud lists its failure classes", () => {
    expect(Object.keys(CLOUD_PLUGINS).sort()).toEqual([...CLOUDS].sort());
    for (const plugin of Object.values(CLOUD_PLUGINS))
      if (plugin) expect(Object.keys(plugin.enrollment.failureClasses).length).toBeGreaterThan(0);
    expect(CLOUD_PLUGINS.aws?.enrollment.failureClasses["ssm-agent-not-registered"]?.commandSent).toBe(false);
  });

  it("counts a command sent unless the cloud's table says its failure class sends none", async () => {
    const store = new SqliteStore(":memory:");
    await store.migrate();
    const r = await runEnrollmentPass({
      matchers: { aws: [{}] as never[], gcp: [], azure: [] },
      backend: storeBackend(store),
      runtime: { proxyAddr: "127.0.0.1:3080" },
      clouds: (name) => (name === "aws" ? fakeCloud : undefined),
    });
    expect(r.instances.map((i) => [i.instance_id, i.status, i.failure_class])).toEqual([
      ["i-agent-missing", "failed", "agent-missing"],
      ["i-script-broke", "failed", "script-broke"],
      ["i-unlisted-class", "failed", "unlisted-class"],
    ]);
    expect(r.commandsSent).toBe(2);
    await store.close();
  });

  it("reads which instance a node is from its cloud's labels, and nothing from a token node's", () => {
    expect(
      nodeInstance({
        "discovery/account-id": ACCOUNT,
        "discovery/region": "eu-west-1",
        "discovery/instance-id": "i-1",
      }),
    ).toEqual({ cloud: "aws", account: ACCOUNT, region: "eu-west-1", instanceId: "i-1" });
    expect(nodeInstance({ "discovery/origin": "token" })).toBeUndefined();
  });
});
