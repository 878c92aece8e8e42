import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { discovery } from "../fixtures/cli";

const SEEDS = path.resolve(__dirname, "../fixtures/seeds");
let dir: string;
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

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
