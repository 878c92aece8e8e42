import { reinstallTarget } from "../../provider/cli/enroll";
import { EnrollInputError } from "../../provider/cli/enroll-inputs";

describe("discovery enroll --reinstall [cloud:]ID", () => {
  const only = (cloud: "aws" | "gcp" | "azure") => ({ aws: [], gcp: [], azure: [], [cloud]: [{}] }) as never;

  it("a bare id belongs to the one cloud the config's matchers name", () => {
    expect(reinstallTarget("i-0123456789abcdef0", only("aws"))).toEqual({ cloud: "aws", id: "i-0123456789abcdef0" });
    expect(reinstallTarget("4292218578475083929", only("gcp"))).toEqual({ cloud: "gcp", id: "4292218578475083929" });
  });

  it("cloud:ID names the cloud, whatever the config holds", () => {
    const both = { aws: [{}], gcp: [{}], azure: [] } as never;
    expect(reinstallTarget("gcp:4292218578475083929", both)).toEqual({ cloud: "gcp", id: "4292218578475083929" });
    expect(reinstallTarget("aws:i-0123", both)).toEqual({ cloud: "aws", id: "i-0123" });
  });

  it("a bare id with matchers of several clouds is refused, saying how to name the cloud", () => {
    const both = { aws: [{}], gcp: [{}], azure: [] } as never;
    expect(() => reinstallTarget("123", both)).toThrow(EnrollInputError);
    expect(() => reinstallTarget("123", both)).toThrow(
      /matchers for aws and gcp; name the cloud, e.g. --reinstall aws:123/,
    );
  });
});
