import { enrollmentProvider, EnrollmentInputs } from "../../provider/pulumi/enrollment";

const diff = (olds: EnrollmentInputs, news: EnrollmentInputs) => enrollmentProvider.diff!("e", olds, news);

describe("Enrollment's diff", () => {
  const matcher = {
    types: ["ec2"],
    regions: ["us-east-1"],
    tags: { env: "prod", team: "a" },
    install: { mode: "agentless" },
  };
  // What the state gives back: the same matchers, keys in another order (the engine keeps no key order).
  const fromState = {
    install: { mode: "agentless" },
    tags: { team: "a", env: "prod" },
    regions: ["us-east-1"],
    types: ["ec2"],
  };

  it("shows no change for the same matchers and no pending instance, whatever their key order", async () => {
    expect(
      await diff({ aws: [fromState], server: "https://rt" }, { aws: [matcher], server: "https://rt", __pending: [] }),
    ).toEqual({
      changes: false,
    });
  });

  it("shows a change for instances pending, or other matchers", async () => {
    const pending = { aws: [matcher], server: "https://rt", __pending: ["123456789012-i-1"] };
    expect((await diff({ aws: [fromState], server: "https://rt" }, pending)).changes).toBe(true);
    const other = { aws: [{ ...matcher, regions: ["eu-west-1"] }], server: "https://rt" };
    expect((await diff({ aws: [fromState], server: "https://rt" }, other)).changes).toBe(true);
  });
});

describe("Enrollment's runtime", () => {
  const aws = [{ types: ["ec2"], regions: ["us-east-1"], tags: { env: "prod" } }];
  const saved = process.env.DISCOVERY_SERVER;
  afterEach(() => {
    if (saved === undefined) delete process.env.DISCOVERY_SERVER;
    else process.env.DISCOVERY_SERVER = saved;
  });
  const check = (olds: EnrollmentInputs, news: EnrollmentInputs) => enrollmentProvider.check!(olds, news);

  it("records a runtime from DISCOVERY_SERVER in the state, and uses it later with the variable unset", async () => {
    process.env.DISCOVERY_SERVER = "https://127.0.0.1:1";
    const created = await check({}, { aws });
    expect(created.inputs).toMatchObject({ server: "https://127.0.0.1:1", __serverFromEnvironment: true });
    delete process.env.DISCOVERY_SERVER;
    const later = await check(created.inputs, { aws });
    expect(later.failures ?? []).toEqual([]);
    expect(later.inputs.server).toBe("https://127.0.0.1:1");
  });

  it("refuses an up while DISCOVERY_SERVER names another runtime than the recorded one, naming both", async () => {
    const olds = { aws, server: "https://127.0.0.1:1", __serverFromEnvironment: true };
    process.env.DISCOVERY_SERVER = "https://127.0.0.1:2";
    const moved = await check(olds, { aws });
    expect(moved.failures).toEqual([
      {
        property: "",
        reason: expect.stringMatching(
          /^server: this Enrollment lives on the runtime https:\/\/127\.0\.0\.1:1 .* but DISCOVERY_SERVER is now https:\/\/127\.0\.0\.1:2: refusing to act on another runtime/,
        ),
      },
    ]);
  });

  it("says where to set the runtime when there is none", async () => {
    delete process.env.DISCOVERY_SERVER;
    expect((await check({}, { aws })).failures).toEqual([
      {
        property: "",
        reason: "server: no runtime: set server on the resource, stack config discovery:server, or DISCOVERY_SERVER",
      },
    ]);
  });
});
