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
