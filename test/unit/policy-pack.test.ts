import { execFileSync } from "child_process";
import * as path from "path";
import { createPolicyPack, policies, POLICY_NAMES } from "../../policy";

const REPO = path.resolve(__dirname, "../..");

describe("the policy pack's contents", () => {
  it("has the eight discovery policies, each with its enforcement level", () => {
    expect(Object.fromEntries(policies.map((p) => [p.name, p.enforcementLevel]))).toEqual({
      "ec2-token-iid-ttl-and-regions": "mandatory",
      "token-allow-rules": "mandatory",
      "matcher-cloud-join-method": "mandatory",
      "ssm-send-command-document-scoped": "mandatory",
      "runtime-address-https": "mandatory",
      "no-wildcard-assume-role": "mandatory",
      "discovery-token-join-method": "mandatory",
      "gcp-os-login-projects": "advisory",
    });
    expect(new Set(POLICY_NAMES).size).toBe(POLICY_NAMES.length);
    for (const p of policies) expect(p.description.length).toBeGreaterThan(40);
  });

  it("declares config with defaults that fit its own schema", () => {
    const schemas = Object.fromEntries(policies.filter((p) => p.configSchema).map((p) => [p.name, p.configSchema!]));
    expect(Object.keys(schemas).sort()).toEqual([
      "ec2-token-iid-ttl-and-regions",
      "gcp-os-login-projects",
      "token-allow-rules",
    ]);
    const ttl = schemas["ec2-token-iid-ttl-and-regions"].properties.maxAwsIidTtl;
    expect(ttl.default).toBe("5m");
    expect(new RegExp(ttl.pattern!).test("5m")).toBe(true);
    expect(new RegExp(ttl.pattern!).test("1h30m")).toBe(true);
    expect(new RegExp(ttl.pattern!).test("five minutes")).toBe(false);
    expect(schemas["token-allow-rules"].properties.allowTokenMethod).toMatchObject({ type: "boolean", default: false });
    expect(schemas["gcp-os-login-projects"].properties.osLoginProjects).toMatchObject({ type: "array", default: [] });
  });

  it("refuses unknown policy names in createPolicyPack's options before serving anything", () => {
    expect(() => createPolicyPack("p", { exclude: ["token-allow-rule"] })).toThrow(
      /unknown policy "token-allow-rule": use one of ec2-token-iid-ttl-and-regions, token-allow-rules, /,
    );
    expect(() => createPolicyPack("p", { config: { "gcp-oslogin": { osLoginProjects: [] } } })).toThrow(
      /unknown policy "gcp-oslogin"/,
    );
  });

  it("can be imported without starting a policy server (the process ends on its own)", () => {
    const out = execFileSync(
      path.join(REPO, "node_modules", ".bin", "tsx"),
      ["-e", 'const p = require("./policy"); console.log(p.policies.length)'],
      { cwd: REPO, timeout: 30_000, encoding: "utf8" },
    );
    expect(out.trim()).toBe("8"); // a served pack would print its port and keep running until the timeout
  });
});
