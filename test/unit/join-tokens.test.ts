import { storedToken } from "../../provider/join/tokens";

const doc = (allow: object[] | undefined, join_method = "ec2") => ({
  kind: "token",
  version: "v2",
  metadata: { name: "ec2-token" },
  spec: { roles: ["Node"], join_method, ...(allow && { allow }) },
});

describe("storedToken, which every join calls", () => {
  it("validates a changed document afresh: a removed allow rule is gone at once", () => {
    const before = storedToken(doc([{ aws_account: "123456789012" }, { aws_account: "210987654321" }]), "ec2-token");
    expect(before?.spec.allow?.map((r) => r.aws_account)).toEqual(["123456789012", "210987654321"]);
    const after = storedToken(doc([{ aws_account: "123456789012" }]), "ec2-token");
    expect(after?.spec.allow?.map((r) => r.aws_account)).toEqual(["123456789012"]);
    expect(storedToken(doc([{ aws_account: "123456789012" }], "iam"), "ec2-token")?.spec.join_method).toBe("iam");
  });

  it("refuses an invalid document every time it is asked, not only the first", () => {
    const bad = doc([{ aws_account: "not-an-account" }]);
    expect(storedToken(bad, "ec2-token")).toBeUndefined();
    expect(storedToken(bad, "ec2-token")).toBeUndefined();
  });

  it("puts a secret token's own name back, per name asked", () => {
    const secret = { ...doc(undefined, "token"), metadata: { name: "(secret)" } };
    const [one, two] = ["s3cret-one-0123456789abcdef", "s3cret-two-0123456789abcdef"];
    expect(storedToken(secret, one)?.metadata.name).toBe(one);
    expect(storedToken(secret, two)?.metadata.name).toBe(two);
  });

  it("hands out a token no caller can change, since joins share it", () => {
    const token = storedToken(doc([{ aws_account: "123456789012" }]), "ec2-token")!;
    expect(() => token.spec.allow!.push({ aws_account: "999999999999" })).toThrow(TypeError);
    expect(() => Object.assign(token.spec, { join_method: "token" })).toThrow(TypeError);
    expect(storedToken(doc([{ aws_account: "123456789012" }]), "ec2-token")?.spec.allow).toHaveLength(1);
  });
});
