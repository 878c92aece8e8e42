import { runtimeResourceProvider, RuntimeResourceInputs } from "../../provider/pulumi/runtime-resource";
import { OWNER_LABEL } from "../../provider/model";
import { startTestRuntime, TestRuntime } from "../fixtures/runtime";

/**
 * The ProvisionToken provider's handlers, called as the engine calls them (check, then create, read, update or
 * delete with what the state holds), against a real runtime in this process.
 */
const TYPE = "pulumi-nodejs:dynamic/discovery:ProvisionToken";
const urnOf = (stack: string, name = "shared") => `urn:pulumi:${stack}::fleet::${TYPE}::${name}`;
const STACK_A = urnOf("a");
const STACK_B = urnOf("b");

type Inputs = RuntimeResourceInputs;
const provider = runtimeResourceProvider("token");
const check = async (olds: Partial<Inputs>, news: Inputs) => {
  const r = await provider.check!(olds as Inputs, news);
  return { inputs: r.inputs as Inputs, failures: r.failures ?? [] };
};
const create = async (inputs: Inputs) => (await provider.create(inputs)).outs as Inputs;
const read = (props: Inputs) => provider.read!("token/shared", props);
const update = async (olds: Inputs, news: Inputs) =>
  (await provider.update!("token/shared", olds, news)).outs as Inputs;
const remove = (props: Inputs) => provider.delete!("token/shared", props);

/** Runs `fn` and returns the message of what it throws. */
async function thrown(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected a failure");
}

/** Runs `fn` with DISCOVERY_SERVER / DISCOVERY_ADMIN_TOKEN as given (undefined: unset), then puts them back. */
async function withEnv<T>(env: { server?: string; token?: string }, fn: () => Promise<T>): Promise<T> {
  const saved = { server: process.env.DISCOVERY_SERVER, token: process.env.DISCOVERY_ADMIN_TOKEN };
  const set = (k: string, v: string | undefined) => (v === undefined ? delete process.env[k] : (process.env[k] = v));
  set("DISCOVERY_SERVER", env.server);
  set("DISCOVERY_ADMIN_TOKEN", env.token);
  try {
    return await fn();
  } finally {
    set("DISCOVERY_SERVER", saved.server);
    set("DISCOVERY_ADMIN_TOKEN", saved.token);
  }
}

describe("ProvisionToken's provider: ownership, the recorded runtime and readable problems", () => {
  let rt: TestRuntime;
  const stored = async () => rt.call("GET", "/v1/resources/token/shared", undefined, { admin: true });
  const apply = async (doc: unknown) => expect((await rt.call("PUT", "/v1/resources", doc, { admin: true })).status);
  const remove_ = async () => rt.call("DELETE", "/v1/resources/token/shared", undefined, { admin: true });
  /** The program's inputs of a token `shared` allowing `accounts`, on the test runtime. */
  const args = (owner: string, accounts: string[], extra: Partial<Inputs> = {}): Inputs => ({
    name: "shared",
    roles: ["Node"],
    joinMethod: "iam",
    allow: accounts.map((awsAccount) => ({ awsAccount })),
    server: rt.url,
    adminToken: rt.runtime.adminToken,
    caCert: rt.runtime.tls.cert,
    owner,
    ...extra,
  });
  /** check, then create with the checked inputs, as the engine does. */
  const up = async (news: Inputs) => {
    const checked = await check({}, news);
    expect(checked.failures).toEqual([]);
    return create(checked.inputs);
  };
  const cliToken = {
    kind: "token",
    version: "v2",
    metadata: { name: "shared" },
    spec: {
      roles: ["Node"],
      join_method: "iam",
      allow: [{ aws_account: "111111111111" }, { aws_account: "222222222222" }],
    },
  };

  beforeAll(async () => {
    rt = await startTestRuntime();
  });
  afterAll(async () => {
    await rt?.stop();
  });
  afterEach(async () => {
    await remove_();
    jest.restoreAllMocks();
  });

  it("refuses to create over a token applied outside Pulumi, at preview and at create, and leaves it whole", async () => {
    (await apply(cliToken)).toBe(200);
    const checked = await check({}, args(STACK_A, ["111111111111"]));
    expect(checked.failures).toEqual([
      {
        property: "",
        reason:
          `token "shared" already exists in the runtime ${rt.url}, written outside Pulumi (discovery apply, the API, ` +
          "or a version without owner labels); creating it would overwrite it. To manage it from this stack, set " +
          "adopt: true on the resource (discovery up: --adopt) and its fields become this program's; or give the " +
          "resource another name",
      },
    ]);
    // Created meanwhile (after the preview): create refuses the same way.
    expect(await thrown(() => create(args(STACK_A, ["111111111111"])))).toContain("already exists");
    const after = await stored();
    expect(after.body.spec.allow).toEqual(cliToken.spec.allow);
    expect(after.body.metadata.labels).toBeUndefined();
  });

  it("adopts it with adopt: true, saying at preview what changes, and labels it with the resource's URN", async () => {
    (await apply(cliToken)).toBe(200);
    const checked = await check({}, args(STACK_A, ["111111111111"], { adopt: true }));
    expect(checked.failures).toEqual([]);
    expect(checked.inputs.__existing).toEqual({ owner: "", changes: ["allow"] });
    const outs = await create(checked.inputs);
    expect(outs.owner).toBe(STACK_A);
    expect(outs.labels).toBeUndefined(); // the owner label is not one of the resource's labels
    const after = await stored();
    expect(after.body.spec.allow).toEqual([{ aws_account: "111111111111" }]);
    expect(after.body.metadata.labels).toEqual({ [OWNER_LABEL]: STACK_A });
  });

  it("takes back its own document when its state was lost (the owner label names it), without adopt", async () => {
    await up(args(STACK_A, ["111111111111"]));
    const again = await check({}, args(STACK_A, ["111111111111", "222222222222"]));
    expect(again.failures).toEqual([]);
    expect(again.inputs.__existing).toEqual({ owner: STACK_A, changes: ["allow"] });
    await create(again.inputs);
    expect((await stored()).body.spec.allow).toHaveLength(2);
  });

  it("between two stacks: the second must adopt, and then only it deletes the token", async () => {
    const a = await up(args(STACK_A, ["111111111111"]));
    const refused = await check({}, args(STACK_B, ["111111111111"]));
    expect(refused.failures[0].reason).toContain(
      `token "shared" already exists in the runtime ${rt.url}, owned by ${STACK_A}`,
    );
    const b = await up(args(STACK_B, ["111111111111"], { adopt: true }));
    expect((await stored()).body.metadata.labels).toEqual({ [OWNER_LABEL]: STACK_B });

    // Stack a no longer owns it: its update refuses, its destroy leaves the token and says so.
    expect(await thrown(() => update(a, args(STACK_A, ["333333333333"])))).toBe(
      `token "shared" in the runtime ${rt.url} is now owned by ${STACK_B}, which adopted it, so this stack does ` +
        `not change it. Set adopt: true on the resource to take it back, or stop managing it here ` +
        `(pulumi state delete '${STACK_A}')`,
    );
    const warn = jest.spyOn(console, "error").mockImplementation(() => undefined);
    await remove(a);
    expect(warn).toHaveBeenCalledWith(
      `warning: token "shared" was left in the runtime ${rt.url}, not deleted: it is owned by ${STACK_B}, which ` +
        "adopted it. Only the resource that owns a document deletes it",
    );
    expect((await stored()).status).toBe(200);
    await remove(b);
    expect((await stored()).status).toBe(404);
  });

  it("leaves a token applied again outside Pulumi on destroy, and takes it back on the next update", async () => {
    const a = await up(args(STACK_A, ["111111111111"]));
    (await apply(cliToken)).toBe(200); // the same name, no owner label
    const refreshed = await read(a);
    expect(refreshed.props.owner).toBeUndefined();
    // The program's inputs against what the refresh read: an update, which labels the token again.
    const checked = await check(refreshed.inputs!, args(STACK_A, ["111111111111"]));
    const diff = await provider.diff!("token/shared", refreshed.props as Inputs, checked.inputs);
    expect(diff.changes).toBe(true);
    const warn = jest.spyOn(console, "error").mockImplementation(() => undefined);
    await remove(refreshed.props as Inputs);
    expect(warn.mock.calls[0][0]).toContain("it no longer carries this resource's owner label");
    expect((await stored()).status).toBe(200);
    const outs = await update(refreshed.props as Inputs, checked.inputs);
    expect(outs.owner).toBe(STACK_A);
    await remove(outs);
    expect((await stored()).status).toBe(404);
  });

  it("shows a token changed behind its back as the properties an update reverts", async () => {
    const a = await up(args(STACK_A, ["111111111111"]));
    const edited = (await stored()).body;
    edited.spec.allow.push({ aws_account: "999999999999" });
    edited.metadata.description = "edited by hand";
    (await apply(edited)).toBe(200);
    const refreshed = await read(a);
    // The engine shows the difference between these inputs and the program's: allow and description.
    expect(refreshed.inputs).toMatchObject({
      allow: [{ awsAccount: "111111111111" }, { awsAccount: "999999999999" }],
      description: "edited by hand",
      owner: STACK_A,
    });
    const checked = await check(refreshed.inputs!, args(STACK_A, ["111111111111"]));
    expect((await provider.diff!("token/shared", refreshed.props as Inputs, checked.inputs)).changes).toBe(true);
    await update(refreshed.props as Inputs, checked.inputs);
    expect((await stored()).body.spec.allow).toEqual([{ aws_account: "111111111111" }]);
    expect((await stored()).body.metadata.description).toBeUndefined();
  });

  it("records a server taken from DISCOVERY_SERVER, uses it without the variable, and refuses another", async () => {
    const news = args(STACK_A, ["111111111111"], { server: undefined });
    const checked = await withEnv({ server: rt.url }, () => check({}, news));
    expect(checked.inputs).toMatchObject({ server: rt.url, __serverFromEnvironment: true });
    const outs = await create(checked.inputs);
    expect(outs).toMatchObject({ server: rt.url, __serverFromEnvironment: true });

    // A new shell: no DISCOVERY_SERVER. Refresh, preview and destroy use the recorded runtime.
    await withEnv({}, async () => {
      expect((await read(outs)).id).toBe("token/shared");
      expect((await check(checked.inputs, news)).inputs.server).toBe(rt.url);
    });
    // DISCOVERY_SERVER names another runtime: every operation refuses, naming both.
    const other = "https://discovery.other.example:3080";
    const moved =
      `token "shared" lives on the runtime ${rt.url} (recorded in the stack's state when it was created, from ` +
      `DISCOVERY_SERVER), but DISCOVERY_SERVER is now ${other}: refusing to act on another runtime. Unset ` +
      `DISCOVERY_SERVER (the recorded runtime is used) or set it to ${rt.url}; to move the resource, set server ` +
      `(or stack config discovery:server) to the new runtime and run up with DISCOVERY_SERVER unset`;
    await withEnv({ server: other }, async () => {
      expect(await thrown(() => read(outs))).toBe(moved);
      expect(await thrown(() => remove(outs))).toBe(moved);
      expect((await check(checked.inputs, news)).failures).toEqual([{ property: "", reason: `server: ${moved}` }]);
      // A server given on the resource is not the environment's to override.
      expect((await read({ ...outs, __serverFromEnvironment: undefined })).id).toBe("token/shared");
    });
    expect((await stored()).status).toBe(200);
    await withEnv({}, () => remove(outs));
    expect((await stored()).status).toBe(404);
  });

  it("reads and deletes state from before the runtime and owner were recorded, through DISCOVERY_SERVER", async () => {
    (await apply(cliToken)).toBe(200); // what that version wrote: no owner label
    const legacy = { ...args("", ["111111111111", "222222222222"]), server: undefined, owner: undefined };
    expect(await withEnv({}, () => thrown(() => read(legacy)))).toContain(
      "its state records none (it was written by an older version, which used DISCOVERY_SERVER)",
    );
    await withEnv({ server: rt.url }, async () => {
      // Its first preview records both: an update, not a replacement.
      const checked = await check(legacy, args(STACK_A, ["111111111111", "222222222222"], { server: undefined }));
      expect(checked.failures).toEqual([]);
      expect(await provider.diff!("token/shared", legacy, checked.inputs)).toEqual({
        changes: true,
        replaces: [],
        deleteBeforeReplace: false,
      });
      await remove(legacy);
    });
    expect((await stored()).status).toBe(404);
  });

  it("reports bad properties as the program spells them, with hints for code rather than YAML", async () => {
    const bad = await check({}, args(STACK_A, ["12345"]));
    expect(bad.failures).toEqual([
      {
        property: "",
        reason:
          'allow[0].awsAccount: must be a 12-digit AWS account id such as "123456789012" ' +
          "(pass it as a string: a number loses the leading zeros)",
      },
    ]);
    const misspelt = await check({}, { ...args(STACK_A, []), allow: [{ awsAcount: "123456789012" }] });
    expect(misspelt.failures.map((f) => f.reason)).toContain(
      'allow[0].awsAcount: unknown field "awsAcount"; did you mean "awsAccount"?',
    );
    const wrongMethod = await check({}, { ...args(STACK_A, ["123456789012"]), awsIidTtl: "5m" });
    expect(wrongMethod.failures.map((f) => f.reason)).toEqual([
      "awsIidTtl: applies only to joinMethod ec2, not iam; remove it",
    ]);
    const reserved = await check({}, args(STACK_A, ["123456789012"], { labels: { [OWNER_LABEL]: "me" } }));
    expect(reserved.failures[0].reason).toBe(
      `labels["${OWNER_LABEL}"]: is set by the resource itself (the URN of the resource owning the document); remove it`,
    );
  });
});
