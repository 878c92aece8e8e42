import { checkStack, discoveryTokenJoinMethod, gcpOsLoginProjects, RESOURCE_TYPES as T } from "../../policy";

/** A ProvisionToken as the stack holds it after a preview (outputs, with the join method inferred). */
function token(logical: string, props: Record<string, unknown>) {
  return { type: T.provisionToken, name: logical, props: { server: "https://d.example.com", ...props } };
}

/** A DiscoveryConfig as the stack holds it. */
function config(logical: string, props: Record<string, unknown>) {
  return { type: T.discoveryConfig, name: logical, props: { name: logical, discoveryGroup: "g", ...props } };
}

describe("discovery-token-join-method", () => {
  it("refuses a token-method token a matcher installs with, pointing at the token without printing its name", async () => {
    const secret = token("join-secret", { name: "s3cr3t-join-8f2c", roles: ["Node"], joinMethod: "token" });
    const matchers = config("prod", {
      aws: [{ regions: ["us-east-1"], install: { joinParams: { tokenName: "s3cr3t-join-8f2c", method: "iam" } } }],
    });
    const violations = await checkStack(discoveryTokenJoinMethod, [secret, matchers]);
    expect(violations).toEqual([
      {
        urn: expect.stringMatching(/ProvisionToken::join-secret$/),
        message: expect.stringMatching(
          /^ProvisionToken "join-secret" is a discovery token \(the matchers DiscoveryConfig "prod" aws\[0\] install with it \(install\.joinParams\.tokenName\)\), but its joinMethod is token: .*Set joinMethod to iam or ec2 \(AWS\), gcp or azure/,
        ),
      },
    ]);
    expect(violations[0].message).not.toContain("s3cr3t-join-8f2c");
  });

  it("counts the default token names of matchers that name none, across Enrollments and ResourceDocuments", async () => {
    const byDefault = token("aws-default", { name: "aws-discovery-iam-token", roles: ["Node"], joinMethod: "token" });
    const gcpDoc = {
      type: T.resourceDocument,
      name: "gcp-token",
      props: { kind: "token", name: "gcp-discovery-token", spec: { roles: ["Node"] } }, // token is inferred
    };
    const enrollment = { type: T.enrollment, name: "enroll", props: { aws: [{ regions: ["us-east-1"] }] } };
    const gcpConfig = {
      type: T.resourceDocument,
      name: "gcp-config",
      props: { kind: "discovery_config", name: "c", spec: { discovery_group: "g", gcp: [{ project_ids: ["p-1"] }] } },
    };
    const violations = await checkStack(discoveryTokenJoinMethod, [byDefault, gcpDoc, enrollment, gcpConfig]);
    expect(violations.map((v) => v.urn)).toEqual([
      expect.stringMatching(/::aws-default$/),
      expect.stringMatching(/::gcp-token$/),
    ]);
    expect(violations[0].message).toContain('Enrollment "enroll" aws[0]');
    expect(violations[1].message).toContain('ResourceDocument "gcp-config" spec.gcp[0]');
    expect(violations[1].message).toContain("its spec.joinMethod is token");
  });

  it("refuses a token granting the Discovery role with joinMethod token even when no matcher names it", async () => {
    const violations = await checkStack(discoveryTokenJoinMethod, [
      token("discovery-service", { name: "x", roles: ["Discovery"], joinMethod: "token" }),
    ]);
    expect(violations).toEqual([
      { urn: expect.any(String), message: expect.stringContaining("it grants the Discovery role") },
    ]);
  });

  it("accepts cloud-method discovery tokens and token-method tokens that discovery does not use", async () => {
    const resources = [
      token("iam", {
        name: "aws-discovery-iam-token",
        roles: ["Node"],
        joinMethod: "iam",
        allow: [{ awsAccount: "123456789012" }],
      }),
      token("hand-joined", { name: "manual-join", roles: ["Node"], joinMethod: "token" }),
      config("prod", { aws: [{ regions: ["us-east-1"] }] }),
    ];
    expect(await checkStack(discoveryTokenJoinMethod, resources)).toEqual([]);
  });
});

describe("gcp-os-login-projects", () => {
  const gcpConfig = (projectIds: string[]) =>
    config("gce", { gcp: [{ projectIds }], aws: [{ regions: ["us-east-1"] }] });

  it("warns for a GCP matcher on a project listed in osLoginProjects, naming the matcher and the fix", async () => {
    const violations = await checkStack(gcpOsLoginProjects, [gcpConfig(["corp-prod", "corp-dev"])], {
      osLoginProjects: ["corp-prod"],
    });
    expect(violations).toEqual([
      {
        urn: expect.stringMatching(/DiscoveryConfig::gce$/),
        message: expect.stringMatching(
          /^DiscoveryConfig "gce" gcp\[0\]\.projectIds targets "corp-prod", where OS Login is enabled \(listed in this policy's osLoginProjects\)\. .*Set enable-oslogin to FALSE/,
        ),
      },
    ]);
  });

  it("warns for every OS Login project a * matcher reaches", async () => {
    const violations = await checkStack(gcpOsLoginProjects, [gcpConfig(["*"])], { osLoginProjects: ["a-1", "b-2"] });
    expect(violations.map((v) => v.message)).toEqual([
      expect.stringMatching(/projectIds matches every project, including "a-1"/),
      expect.stringMatching(/projectIds matches every project, including "b-2"/),
    ]);
  });

  it("finds OS Login turned on by project metadata in the stack", async () => {
    const item = {
      type: T.gcpProjectMetadataItem,
      name: "oslogin",
      props: { key: "enable-oslogin", value: "TRUE", project: "corp-prod" },
    };
    const viaProvider = {
      type: T.gcpProjectMetadata,
      name: "meta",
      props: { metadata: { "enable-oslogin": "true" } },
      providerProps: { project: "corp-dev" },
    };
    const off = {
      type: T.gcpProjectMetadata,
      name: "off",
      props: { project: "corp-qa", metadata: { "enable-oslogin": "FALSE" } },
    };
    const violations = await checkStack(gcpOsLoginProjects, [
      item,
      viaProvider,
      off,
      gcpConfig(["corp-prod", "corp-dev", "corp-qa"]),
    ]);
    expect(violations.map((v) => v.message)).toEqual([
      expect.stringContaining(
        'targets "corp-prod", where OS Login is enabled (enable-oslogin is on in ProjectMetadataItem "oslogin")',
      ),
      expect.stringContaining(
        'targets "corp-dev", where OS Login is enabled (enable-oslogin is on in ProjectMetadata "meta")',
      ),
    ]);
  });

  it("says nothing without OS Login projects, or for projects without it", async () => {
    expect(await checkStack(gcpOsLoginProjects, [gcpConfig(["corp-prod"])])).toEqual([]);
    expect(await checkStack(gcpOsLoginProjects, [gcpConfig(["corp-dev"])], { osLoginProjects: ["corp-prod"] })).toEqual(
      [],
    );
  });
});
