import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CliResult, discovery } from "../fixtures/cli";

const SEEDS = path.resolve(__dirname, "../fixtures/seeds");
let dir: string;
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

/** What a user sees of a run: its exit status and both streams. */
const outcome = (r: CliResult) => ({ status: r.status, stdout: r.stdout, stderr: r.stderr });

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-validate-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("discovery validate", () => {
  it("accepts every seed example that is valid under SPEC §1", () => {
    const files = fs.readdirSync(path.join(SEEDS, "valid")).map((f) => path.join(SEEDS, "valid", f));
    const r = discovery(["validate", ...files.flatMap((f) => ["-f", f])]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      "5 documents valid: discovery_config/default, token/ec2-token, token/ec2-multiaccount-token, discovery_config/default, token/aws-discovery-iam-token\n",
    );
  });

  it.each(fs.readdirSync(path.join(SEEDS, "invalid")))("refuses the seed example %s at the exact line", (name) => {
    const file = path.join(SEEDS, "invalid", name);
    const expected = fs
      .readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("# expect: "))
      .map((l) => `${file}:${l.slice("# expect: ".length)}`);
    const r = discovery(["validate", "-f", file]);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines.slice(0, -1).sort()).toEqual(expected.sort());
    expect(lines.at(-1)).toBe(`${expected.length} problem${expected.length === 1 ? "" : "s"} found`);
  });

  it("reports problems in the second and third documents of a file, each at its line", () => {
    const file = write(
      "multi.yaml",
      [
        "kind: token", // 1
        "version: v2",
        "metadata: {name: ok}",
        "spec: {roles: [Node], join_method: token}",
        "---", // 5
        "kind: token",
        "version: v2",
        "metadata: {name: bad}",
        "spec:",
        "  roles: [Node]", // 10
        "  join_method: ec2",
        "  allow:",
        '    - aws_account: "42"',
        "---",
        "kind: installer", // 15
        "version: v1",
        "metadata: {name: i}",
        "spec:",
        "  script: |",
        "    #!/bin/sh", // 20
        "    echo {{ .Secret }}",
        "",
      ].join("\n"),
    );
    const r = discovery(["validate", "-f", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `${file}:13:20: spec.allow[0].aws_account: must be a 12-digit AWS account id such as "123456789012" (quote it in YAML so leading zeros are kept)\n` +
        `${file}:21:10: spec.script: template variable {{ .Secret }} is not allowed; use {{ .PublicProxyAddr }} or {{ .ClusterName }}\n` +
        "2 problems found\n",
    );
  });

  it("reports a YAML syntax error at its line and still checks the other documents", () => {
    const file = write(
      "broken.yaml",
      [
        "kind: token",
        "version: v2",
        "metadata: name: a",
        "spec: {roles: [Node]}",
        "---",
        "kind: tokn",
        "version: v2",
        "",
      ].join("\n"),
    );
    const r = discovery(["validate", "-f", file]);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:\\d+: yaml: invalid YAML: `),
    );
    expect(lines).toContain(`${file}:6:7: kind: unknown kind "tokn"; did you mean "token"?`);
  });

  it("refuses a duplicated key where it is written", () => {
    const file = write(
      "dup.yaml",
      "kind: token\nversion: v2\nkind: token\nmetadata: {name: a}\nspec: {roles: [Node]}\n",
    );
    const r = discovery(["validate", "-f", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`dup\\.yaml:3:1: yaml: invalid YAML: Map keys must be unique`));
  });

  it("reads JSON, a single object or a list, and prints the documents with defaults", () => {
    const file = write(
      "docs.json",
      JSON.stringify([
        {
          kind: "token",
          version: "v2",
          metadata: { name: "e" },
          spec: { roles: ["Node"], join_method: "ec2", allow: [{ aws_account: "123456789012" }] },
        },
        {
          kind: "discovery_config",
          version: "v1",
          metadata: { name: "d" },
          spec: { discovery_group: "g", aws: [{ regions: ["*"] }] },
        },
      ]),
    );
    const r = discovery(["validate", "-f", file, "-o", "json"]);
    expect(r.status).toBe(0);
    const docs = JSON.parse(r.stdout);
    expect(docs[0].spec.aws_iid_ttl).toBe("5m");
    expect(docs[1].spec.aws[0].ssm.document_name).toBe("AWS-RunShellScript");

    const bad = write(
      "bad.json",
      '{\n  "kind": "token",\n  "version": "v2",\n  "metadata": {"name": "x"},\n  "spec": {"roles": ["Root"]}\n}\n',
    );
    const r2 = discovery(["validate", "-f", bad]);
    expect(r2.stderr).toContain(`${bad}:5:22: spec.roles[0]: must be one of Node, Discovery`);
  });

  it("round-trips through -o yaml: the printed documents validate again", () => {
    const out = discovery(["validate", "-f", path.join(SEEDS, "valid", "001-ec2-tokens.yaml"), "-o", "yaml"]);
    expect(out.status).toBe(0);
    const again = discovery(["validate", "-f", write("again.yaml", out.stdout)]);
    expect(again.stdout).toBe("2 documents valid: token/ec2-token, token/ec2-multiaccount-token\n");
  });

  it("names a missing file, and asks for a file when none is given", () => {
    const r = discovery(["validate", "-f", path.join(dir, "nope.yaml")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${path.join(dir, "nope.yaml")}:1:1: file: cannot read: no such file`);
    const none = discovery(["validate"]);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain("name at least one file");
  });
});

describe("discovery validate: runtime configs, top-level typos and regions", () => {
  it("checks a runtime config (discovery serve --config) and reports every problem of it in one run", () => {
    const file = write(
      "runtime.yaml",
      [
        "version: v1", // 1
        "cluster_name: Discovery_Prod",
        "listen_addr: 0.0.0.0",
        "public_addr: http://discovery.example.com:3080",
        "storage: {type: sqllite, path: ./data/discovery.db}", // 5
        "join:",
        "  aws: {sts_endpoint: sts.amazonaws.com}",
        "discovery_servce:",
        "  aws: [{regions: [us-east-9]}]",
        "",
      ].join("\n"),
    );
    const expected =
      `${file}:2:15: cluster_name: must be a DNS-style name such as discovery.local\n` +
      `${file}:3:14: listen_addr: must be host:port such as 127.0.0.1:3080\n` +
      `${file}:4:14: public_addr: must be an https URL: nodes send identities to it\n` +
      `${file}:5:17: storage.type: must be one of "sqlite", "postgres"; did you mean "sqlite"?\n` +
      `${file}:7:23: join.aws.sts_endpoint: must be a URL such as https://sts.amazonaws.com\n` +
      `${file}:8:1: discovery_servce: unknown field "discovery_servce"; did you mean "discovery_service"?\n`;
    const r = discovery(["validate", "-f", file]);
    expect(outcome(r)).toEqual({
      status: 1,
      stdout: "",
      stderr: expected + "6 problems found\n",
    });
    // discovery serve refuses the same config with the same lines, before anything starts.
    const serve = discovery(["serve", "--config", file]);
    expect({ status: serve.status, stderr: serve.stderr }).toEqual({ status: 1, stderr: expected });
    expect(fs.existsSync(path.join(dir, "data"))).toBe(false);
  });

  it("checks the matchers of a runtime config's discovery_service: a region typo is refused with the name meant", () => {
    const file = write(
      "runtime-regions.yaml",
      "version: v1\ncluster_name: discovery.local\npublic_addr: https://127.0.0.1:3080\n" +
        "discovery_service:\n  aws: [{regions: [us-east-9, eu-centrl-1]}]\n",
    );
    const r = discovery(["validate", "-f", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `${file}:5:20: discovery_service.aws[0].regions[0]: "us-east-9" is not an AWS region: us-east regions are ` +
        `numbered 1 to 2; did you mean "us-east-1"?\n` +
        `${file}:5:31: discovery_service.aws[0].regions[1]: "eu-centrl-1" is not an AWS region: "centrl" is not a ` +
        `direction AWS names regions by; did you mean "eu-central-1"?\n` +
        "2 problems found\n",
    );
  });

  it("accepts a valid runtime config, warning about a region it does not know", () => {
    const file = write(
      "runtime-ok.yaml",
      "version: v1\ncluster_name: discovery.local\npublic_addr: https://127.0.0.1:3080\n" +
        "discovery_service:\n  aws: [{regions: [us-east-1, ap-southeast-8]}]\n",
    );
    const r = discovery(["validate", "-f", file]);
    expect(outcome(r)).toEqual({
      status: 0,
      stdout: `1 document valid: runtime config ${file} (1 warning)\n`,
      stderr:
        `${file}:5:31: discovery_service.aws[0].regions[1]: warning: "ap-southeast-8" is not an AWS region this ` +
        `version knows; it is used as written in case AWS opened it recently: check it is not a typo of ` +
        `"ap-southeast-1"\n`,
    });
  });

  it("says which field a misspelt top-level key of a teleport.yaml or a document meant", () => {
    const teleport = write(
      "teleport.yaml",
      "version: v3\nteleport:\n  nodename: d1\ndiscovery_servce:\n  enabled: true\n  aws: [{regions: [us-east-1]}]\n",
    );
    const doc = write("knd.yaml", "knd: token\nversion: v2\nmetadata: {name: t}\nspec: {roles: [Node]}\n");
    const r = discovery(["validate", "-f", teleport, "-f", doc]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `${teleport}:4:1: discovery_servce: unknown field "discovery_servce"; did you mean "discovery_service"?\n` +
        `${doc}:1:1: knd: unknown field "knd"; did you mean "kind"?\n` +
        "2 problems found\n",
    );
  });

  it("refuses region typos in matchers and tokens, and warns about well-formed regions it does not know", () => {
    const file = write(
      "regions.yaml",
      [
        "kind: discovery_config", // 1
        "version: v1",
        "metadata: {name: dev}",
        "spec:",
        "  discovery_group: dev", // 5
        "  aws: [{regions: [us-east-9, us-west-2]}]",
        "  gcp: [{project_ids: [proj-1], locations: [us-centrl1-a]}]",
        "---",
        "kind: token",
        "version: v2", // 10
        "metadata: {name: ec2}",
        'spec: {roles: [Node], join_method: ec2, allow: [{aws_account: "123456789012", aws_regions: [eu-wset-1]}]}',
        "",
      ].join("\n"),
    );
    const r = discovery(["validate", "-f", file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `${file}:6:20: spec.aws[0].regions[0]: "us-east-9" is not an AWS region: us-east regions are numbered 1 to 2; ` +
        `did you mean "us-east-1"?\n` +
        `${file}:7:45: spec.gcp[0].locations[0]: "us-centrl1-a" is not a GCP zone: "centrl" is not a direction GCP ` +
        `names regions by; did you mean "us-central1-a"?\n` +
        `${file}:12:93: spec.allow[0].aws_regions[0]: "eu-wset-1" is not an AWS region: "wset" is not a direction ` +
        `AWS names regions by; did you mean "eu-west-1"?\n` +
        "3 problems found\n",
    );

    const fine = write(
      "new-regions.yaml",
      "kind: discovery_config\nversion: v1\nmetadata: {name: dev}\nspec:\n  discovery_group: dev\n" +
        '  aws: [{regions: [us-east-3]}]\n  azure: [{subscriptions: ["*"], regions: [estus]}]\n',
    );
    const ok = discovery(["validate", "-f", fine]);
    expect(outcome(ok)).toEqual({
      status: 0,
      stdout: "1 document valid: discovery_config/dev (2 warnings)\n",
      stderr:
        `${fine}:6:20: spec.aws[0].regions[0]: warning: "us-east-3" is not an AWS region this version knows; it is ` +
        `used as written in case AWS opened it recently: check it is not a typo of "us-east-1"\n` +
        `${fine}:7:44: spec.azure[0].regions[0]: warning: "estus" is not an Azure region this version knows; it is ` +
        `used as written in case Azure opened it recently: check it is not a typo of "eastus"\n`,
    });
  });

  it("discovery enroll checks every --config file before refusing, and lists the problems of all of them", () => {
    const a = write("enroll-a.yaml", "discovery_service:\n  aws: [{regions: [us-east-9]}]\n");
    const b = write(
      "enroll-b.yaml",
      "version: v1\ncluster_name: discovery.local\npublic_addr: https://127.0.0.1:3080\nadmin_tokn_file: x\n",
    );
    const r = discovery(["enroll", "--config", a, "--config", b, "--once"]);
    expect(outcome(r)).toEqual({
      status: 1,
      stdout: "",
      stderr:
        `${a}:2:20: discovery_service.aws[0].regions[0]: "us-east-9" is not an AWS region: us-east regions are ` +
        `numbered 1 to 2; did you mean "us-east-1"?\n` +
        `${b}:4:1: admin_tokn_file: unknown field "admin_tokn_file"; did you mean "admin_token_file"?\n`,
    });
  });
});
