import * as fs from "fs";
import * as path from "path";
import {
  CreateDocumentCommand,
  DescribeDocumentCommand,
  DeleteDocumentCommand,
  GetDocumentCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { Stack } from "@pulumi/pulumi/automation";
import { documentContent } from "../../provider/clouds/aws/ssm-document";
import { Moto, MOTO_CREDENTIALS, MOTO_DEFAULT_ACCOUNT, startMoto } from "../../provider/sandbox/moto";
import { copyProgram, IN_REPO_WORK, linkPackage, localStack } from "../fixtures/pulumi";

const PROGRAM = path.resolve(__dirname, "../fixtures/pulumi-ssm-program");
const TYPE = "pulumi-nodejs:dynamic/discovery:SsmInstallerDocument";

/** The document as moto holds it: default version and its content, or undefined when it does not exist. */
async function remote(ssm: SSMClient, name: string): Promise<{ defaultVersion: string; content: unknown } | undefined> {
  try {
    const d = await ssm.send(new DescribeDocumentCommand({ Name: name }));
    const g = await ssm.send(new GetDocumentCommand({ Name: name }));
    return { defaultVersion: d.Document!.DefaultVersion!, content: JSON.parse(g.Content!) };
  } catch (e) {
    if ((e as Error).name === "InvalidDocument") return undefined;
    throw e;
  }
}

const contentOf = (mode: "agent" | "agentless") => JSON.parse(documentContent(mode));
const PIN = "sha256//tYh4Wx8sV0XQb5h3s2lN+2m3CjYkAR9Xb8n7Qe1UZ8o=";
const FIXED = { proxyAddr: "runtime.example.com:3080", caPin: PIN };
/** The agent document an earlier package made: a free-form `env` parameter pasted into `exec env ...`. */
const ENV_DOCUMENT = fs.readFileSync(path.resolve(__dirname, "../fixtures/ssm-document-env-v1.json"), "utf8");

describe("aws.SsmInstallerDocument through the real Pulumi engine, against moto", () => {
  let moto: Moto;
  let ssm: SSMClient;
  let dir: string;
  let env: Record<string, string>;
  let stack: Stack;

  beforeAll(async () => {
    moto = await startMoto();
    ssm = new SSMClient({ region: "us-east-1", endpoint: moto.endpoint, credentials: MOTO_CREDENTIALS });
    dir = copyProgram(PROGRAM, IN_REPO_WORK);
    linkPackage(dir);
    env = {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      AWS_REGION: "us-east-1",
    };
    stack = await localStack(dir, "ssm", env);
  });
  afterAll(async () => {
    ssm?.destroy();
    await moto?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("up creates the agent document, with its ARN and versions", async () => {
    await stack.setConfig("mode", { value: "agent" });
    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toEqual({ create: 2 }); // the stack and the document
    expect(up.outputs.urn.value).toMatch(new RegExp(`::${TYPE}::installer$`));
    expect(up.outputs.arn.value).toBe(`arn:aws:ssm:us-east-1:${MOTO_DEFAULT_ACCOUNT}:document/DiscoveryInstaller`);
    expect(up.outputs.defaultVersion.value).toBe("1");
    expect(await remote(ssm, "DiscoveryInstaller")).toEqual({ defaultVersion: "1", content: contentOf("agent") });
  });

  it("a preview after up shows no change", async () => {
    const preview = await stack.preview();
    expect(preview.changeSummary).toEqual({ same: 2 });
  });

  it("an earlier package's document (env parameter, no content digest in state) is updated in place: a new default version", async () => {
    // The document and the state as an earlier package left them.
    await ssm.send(new DeleteDocumentCommand({ Name: "DiscoveryInstaller" }));
    await ssm.send(
      new CreateDocumentCommand({
        Name: "DiscoveryInstaller",
        Content: ENV_DOCUMENT,
        DocumentType: "Command",
        DocumentFormat: "JSON",
        Tags: [{ Key: "owner", Value: "discovery-tests" }],
      }),
    );
    const state = await stack.exportStack();
    for (const r of state.deployment.resources ?? []) if (r.type === TYPE) delete r.outputs.contentDigest;
    await stack.importStack(state);
    expect((await remote(ssm, "DiscoveryInstaller"))?.content).toEqual(JSON.parse(ENV_DOCUMENT));

    const preview = await stack.preview();
    expect(preview.changeSummary).toEqual({ same: 1, update: 1 });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 1, update: 1 });
    expect(up.outputs.defaultVersion.value).toBe("2");
    const now = await remote(ssm, "DiscoveryInstaller");
    expect(now).toEqual({ defaultVersion: "2", content: contentOf("agent") });
    expect(Object.keys((now!.content as { parameters: object }).parameters)).not.toContain("env");
    expect((await stack.preview()).changeSummary).toEqual({ same: 2 });
  });

  it("switching to agentless updates in place: version 3 becomes the default", async () => {
    await stack.setConfig("mode", { value: "agentless" });
    const preview = await stack.preview();
    expect(preview.changeSummary).toEqual({ same: 1, update: 1 });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 1, update: 1 });
    expect(up.outputs.mode.value).toBe("agentless");
    expect(up.outputs.defaultVersion.value).toBe("3");
    expect(up.outputs.latestVersion.value).toBe("3");
    expect(await remote(ssm, "DiscoveryInstaller")).toEqual({ defaultVersion: "3", content: contentOf("agentless") });
  });

  it("fixing the runtime's address and pin updates in place; SendCommand then accepts no other", async () => {
    await stack.setConfig("proxyAddr", { value: "https://runtime.example.com:3080" });
    await stack.setConfig("caPin", { value: PIN });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 1, update: 1 });
    expect(up.outputs.defaultVersion.value).toBe("4");
    const { content } = (await remote(ssm, "DiscoveryInstaller"))!;
    expect(content).toEqual(JSON.parse(documentContent("agentless", FIXED)));
    const { parameters } = content as { parameters: Record<string, { allowedPattern: string }> };
    expect(new RegExp(parameters.proxyAddr.allowedPattern).test("runtime.example.com:3080")).toBe(true);
    expect(new RegExp(parameters.proxyAddr.allowedPattern).test("elsewhere.example.com:3080")).toBe(false);
    expect(new RegExp(parameters.caPin.allowedPattern).test(PIN)).toBe(true);
  });

  it("a new name replaces the document: the new one exists, the old one is gone", async () => {
    await stack.setConfig("documentName", { value: "DiscoveryInstaller2" });
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 1, replace: 1 });
    expect(await remote(ssm, "DiscoveryInstaller")).toBeUndefined();
    expect(await remote(ssm, "DiscoveryInstaller2")).toEqual({
      defaultVersion: "1",
      content: JSON.parse(documentContent("agentless", FIXED)),
    });
  });

  it("refuses a bad name at preview, naming the `name` property, and creates nothing", async () => {
    const bad = await localStack(dir, "bad-name", env);
    await bad.setConfig("documentName", { value: "AWS-Mine" });
    const err = await bad.preview().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(String(err?.message)).toContain(
      'property name value {AWS-Mine} has a problem: document name "AWS-Mine" must not start with "aws" or "amazon"',
    );
    expect((await bad.exportStack()).deployment.resources ?? []).toHaveLength(0);
  });

  it("refresh reports a document deleted outside Pulumi as gone", async () => {
    await ssm.send(new DeleteDocumentCommand({ Name: "DiscoveryInstaller2" }));
    const refresh = await stack.refresh();
    expect(refresh.summary.resourceChanges).toEqual({ same: 1, delete: 1 });
    const resources = (await stack.exportStack()).deployment.resources ?? [];
    expect(resources.filter((r: { type: string }) => r.type === TYPE)).toHaveLength(0);
  });

  it("up recreates it, and destroy deletes it", async () => {
    const up = await stack.up();
    expect(up.summary.resourceChanges).toEqual({ same: 1, create: 1 });
    expect(await remote(ssm, "DiscoveryInstaller2")).toBeDefined();
    const destroy = await stack.destroy();
    expect(destroy.summary.result).toBe("succeeded");
    expect(destroy.summary.resourceChanges).toEqual({ delete: 2 });
    expect(await remote(ssm, "DiscoveryInstaller2")).toBeUndefined();
  });
});
