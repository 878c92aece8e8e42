import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadDocuments, sdkArgsOf } from "./documents";
import { AutomationError } from "./errors";

describe("loadDocuments", () => {
  let dir: string;
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return err as AutomationError;
    }
    throw new Error("expected a refusal");
  };
  beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "pd-automation-unit-"))));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("names each resource kind/name, and a token whose name is its secret by a hash of it", () => {
    const file = write(
      "docs.yaml",
      "kind: token\nversion: v2\nmetadata: {name: s3cret-join-name}\nspec: {roles: [Node], join_method: token}\n---\n" +
        "kind: installer\nversion: v1\nmetadata: {name: custom}\nspec: {script: echo}\n",
    );
    const { declarations } = loadDocuments({ files: [file] });
    expect(declarations.map((d) => [d.resourceName, d.source])).toEqual([
      [expect.stringMatching(/^token\/sha256-[0-9a-f]{16}$/), `${file}:3:18`],
      ["installer/custom", `${file}:8:18`],
    ]);
    expect(declarations[0].resourceName).not.toContain("s3cret");
  });

  it("reads a teleport.yaml's discovery_service as a discovery_config named by its group; disabled, as nothing", () => {
    const teleport = write(
      "teleport.yaml",
      "version: v3\nteleport: {nodename: n}\ndiscovery_service:\n  discovery_group: edge\n  aws:\n    - {types: [ec2], regions: [us-east-1], tags: {Team-Name: a}}\n",
    );
    const [d] = loadDocuments({ files: [teleport] }).declarations;
    expect(d.resourceName).toBe("discovery_config/edge");
    expect(d.source).toBe(`${teleport}:4:20`);
    // Tag keys are user data: camelCase applies to field names only.
    expect((sdkArgsOf(d.resource).aws as { tags: unknown }[])[0].tags).toEqual({ "Team-Name": "a" });
    const off = write("off.yaml", "discovery_service: {enabled: false}\n");
    expect(loadDocuments({ files: [off] }).declarations).toEqual([]);
  });

  it("refuses the same kind and name twice, at the second, naming the first", () => {
    const doc = "kind: installer\nversion: v1\nmetadata: {name: twice}\nspec: {script: echo}\n";
    const a = write("a.yaml", doc);
    const b = write("b.yaml", `# again\n${doc}`);
    const err = refusal(() => loadDocuments({ files: [a, b] }));
    expect(err.code).toBe("invalid_documents");
    expect(err.message).toBe(
      `${b}:4:18: metadata.name: installer "twice" is already declared at ${a}:3:18; the runtime keys documents by kind and name, keep one\n` +
        "1 problem found; nothing was changed",
    );
  });

  it("locates problems of documents given as values by their index", () => {
    const err = refusal(() => loadDocuments({ documents: [{ kind: "tokn" }] }));
    expect(err.message).toBe(
      'documents[0]: kind: unknown kind "tokn"; did you mean "token"?\n1 problem found; nothing was changed',
    );
  });
});
