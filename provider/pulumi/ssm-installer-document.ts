import type * as dynamic from "@pulumi/pulumi/dynamic";
import type { SSMClient } from "@aws-sdk/client-ssm";
import type { FixedRuntime, InstallMode } from "../clouds/aws/ssm-document";

/** Inputs of an SsmInstallerDocument, as the engine hands them to the provider. */
export interface SsmInstallerDocumentInputs {
  /** Name of the SSM document. */
  name: string;
  /** AWS region the document lives in. */
  region: string;
  /** agent or agentless. */
  mode: InstallMode;
  /** host:port (or https://host:port) the document fixes: callers cannot point instances elsewhere. */
  proxyAddr?: string;
  /** sha256//<base64> TLS key pin the document fixes: the download and the join trust only that key. */
  caPin?: string;
  /** Tags of the document. */
  tags?: Record<string, string>;
}

/** Outputs of an SsmInstallerDocument. */
export interface SsmInstallerDocumentOutputs extends Omit<SsmInstallerDocumentInputs, "mode"> {
  /** The mode whose content the default version holds; `modified` when it holds neither (refresh found drift). */
  mode: InstallMode | "modified";
  /** arn:aws:ssm:<region>:<account>:document/<name>. */
  arn: string;
  /** The version SendCommand runs. */
  defaultVersion: string;
  /** The newest version. */
  latestVersion: string;
  /**
   * Digest of the default version's content. A package whose document differs (or a document changed outside
   * Pulumi, after a refresh) then shows as an update, which makes its content the new default version.
   */
  contentDigest?: string;
}

/** The string the engine passes for inputs that are not known yet (during preview). */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

// Absolute paths, captured by value when Pulumi serializes this provider: the provider process loads these
// modules from the package itself (linked or installed), not from wherever the program happens to run.
const SSM_DOCUMENT_MODULE = require.resolve("../clouds/aws/ssm-document");
const MODEL_MODULE = require.resolve("../model");
const CLIENT_SSM_MODULE = require.resolve("@aws-sdk/client-ssm");
const CLIENT_STS_MODULE = require.resolve("@aws-sdk/client-sts");
const SDK_WARNING_MODULE = require.resolve("../clouds/aws/sdk-warning");

/** Keeps the SDK's Node version warning out of the preview (see sdk-warning.ts). */
function quietSdk(): void {
  (require(SDK_WARNING_MODULE) as typeof import("../clouds/aws/sdk-warning")).silenceAwsSdkNodeVersionWarning();
}

/** The SSM document lifecycle, loaded inside the dynamic provider process. */
function documents(): typeof import("../clouds/aws/ssm-document") {
  return require(SSM_DOCUMENT_MODULE);
}

// Clients are made per call inside the provider: a client cannot be serialized, and the SDK reads
// AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SSM and the credentials from the provider process's environment.
function ssmClient(region: string): SSMClient {
  quietSdk();
  const { SSMClient } = require(CLIENT_SSM_MODULE) as typeof import("@aws-sdk/client-ssm");
  return new SSMClient({ region });
}

/** arn:<partition>:ssm:<region>:<account>:document/<name>, the account being the caller's (STS). */
async function documentArn(region: string, name: string): Promise<string> {
  quietSdk();
  const { STSClient, GetCallerIdentityCommand } = require(CLIENT_STS_MODULE) as typeof import("@aws-sdk/client-sts");
  const sts = new STSClient({ region });
  try {
    const { Account } = await sts.send(new GetCallerIdentityCommand({}));
    const partition = region.startsWith("cn-") ? "aws-cn" : region.startsWith("us-gov-") ? "aws-us-gov" : "aws";
    return `arn:${partition}:ssm:${region}:${Account}:document/${name}`;
  } finally {
    sts.destroy();
  }
}

/** The values the document fixes, from inputs or outputs. */
const fixedOf = (p: { proxyAddr?: string; caPin?: string }): FixedRuntime => ({
  proxyAddr: p.proxyAddr || undefined,
  caPin: p.caPin || undefined,
});

/** The mode whose document `content` is (with the values `p` fixes), or `modified` when it is neither. */
function modeOf(content: string, p: FixedRuntime): InstallMode | "modified" {
  const d = documents();
  for (const mode of ["agent", "agentless"] as const)
    if (d.sameContent(content, d.documentContent(mode, p))) return mode;
  return "modified";
}

function sameTags(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ea = Object.entries(a ?? {}).sort();
  const eb = Object.entries(b ?? {}).sort();
  return JSON.stringify(ea) === JSON.stringify(eb);
}

/** Brings the document's tags from `olds` to `news`. */
async function retag(
  client: SSMClient,
  name: string,
  olds: Record<string, string> | undefined,
  news: Record<string, string> | undefined,
): Promise<void> {
  const { AddTagsToResourceCommand, RemoveTagsFromResourceCommand } = require(
    CLIENT_SSM_MODULE,
  ) as typeof import("@aws-sdk/client-ssm");
  const removed = Object.keys(olds ?? {}).filter((k) => !(k in (news ?? {})));
  if (removed.length > 0)
    await client.send(
      new RemoveTagsFromResourceCommand({ ResourceType: "Document", ResourceId: name, TagKeys: removed }),
    );
  const tags = Object.entries(news ?? {}).map(([Key, Value]) => ({ Key, Value }));
  if (tags.length > 0)
    await client.send(new AddTagsToResourceCommand({ ResourceType: "Document", ResourceId: name, Tags: tags }));
}

/** The problems of `news`, each on the property it concerns; unknown (preview) values are checked later. */
function checkInputs(news: SsmInstallerDocumentInputs): dynamic.CheckFailure[] {
  const failures: dynamic.CheckFailure[] = [];
  const known = (v: unknown) => v !== UNKNOWN;
  if (typeof news.name !== "string") failures.push({ property: "name", reason: "is required: the SSM document name" });
  else if (known(news.name)) {
    const problem = documents().validateDocumentName(news.name);
    if (problem) failures.push({ property: "name", reason: problem });
  }
  const { AWS_REGION_RE } = require(MODEL_MODULE) as typeof import("../model");
  if (typeof news.region !== "string" || (known(news.region) && !AWS_REGION_RE.test(news.region)))
    failures.push({ property: "region", reason: "must be an AWS region such as us-east-1" });
  if (known(news.mode) && news.mode !== "agent" && news.mode !== "agentless")
    failures.push({ property: "mode", reason: 'must be "agent" or "agentless"' });
  const { PARAMETER_PATTERNS, proxyHost } = documents();
  if (news.proxyAddr !== undefined && known(news.proxyAddr)) {
    if (typeof news.proxyAddr !== "string" || !PARAMETER_PATTERNS.proxyAddr.test(proxyHost(news.proxyAddr)))
      failures.push({ property: "proxyAddr", reason: "must be host:port (or https://host:port) of the runtime" });
  }
  if (news.caPin !== undefined && known(news.caPin)) {
    if (typeof news.caPin !== "string" || !PARAMETER_PATTERNS.caPin.test(news.caPin))
      failures.push({
        property: "caPin",
        reason: "must be sha256//<base64 of 32 bytes>, as DiscoveryService's tlsPin",
      });
  }
  if (news.tags !== undefined && known(news.tags)) {
    const ok =
      news.tags !== null &&
      typeof news.tags === "object" &&
      Object.values(news.tags).every((v) => typeof v === "string" || v === UNKNOWN);
    if (!ok) failures.push({ property: "tags", reason: "must be a map of string values" });
  }
  return failures;
}

/**
 * The custom SSM Command document that installs the discovery agent (or sets up agentless OpenSSH): created
 * from the mode's content, changed in place by a new version made the default, and deleted on destroy.
 * A new name or region is a new document (replace).
 */
export const ssmInstallerDocumentProvider: dynamic.ResourceProvider = {
  async check(_olds: SsmInstallerDocumentInputs, news: SsmInstallerDocumentInputs) {
    return { inputs: news, failures: checkInputs(news) };
  },

  async diff(_id: string, olds: SsmInstallerDocumentOutputs, news: SsmInstallerDocumentInputs) {
    const replaces = (["name", "region"] as const).filter((k) => olds[k] !== news[k]);
    const fixed = (p: FixedRuntime) => JSON.stringify(fixedOf(p));
    const d = documents();
    // States written before contentDigest existed have none: their documents predate this package's content.
    const stale =
      (news.mode === "agent" || news.mode === "agentless") &&
      olds.contentDigest !== d.contentDigest(d.documentContent(news.mode, fixedOf(news)));
    const changes =
      replaces.length > 0 ||
      olds.mode !== news.mode ||
      fixed(olds) !== fixed(news) ||
      stale ||
      !sameTags(olds.tags, news.tags);
    // A new name or region never collides with the old document, so the new one is made first.
    return { changes, replaces, deleteBeforeReplace: false };
  },

  async create(inputs: SsmInstallerDocumentInputs) {
    const client = ssmClient(inputs.region);
    try {
      const state = await documents().createInstallerDocument(client, {
        name: inputs.name,
        mode: inputs.mode,
        runtime: fixedOf(inputs),
        tags: inputs.tags,
      });
      const arn = await documentArn(inputs.region, inputs.name);
      const outs: SsmInstallerDocumentOutputs = {
        ...inputs,
        arn,
        defaultVersion: state.defaultVersion,
        latestVersion: state.latestVersion,
        contentDigest: documents().contentDigest(state.content),
      };
      return { id: arn, outs };
    } finally {
      client.destroy();
    }
  },

  async read(id: string, props: SsmInstallerDocumentOutputs) {
    const client = ssmClient(props.region);
    try {
      const state = await documents().readInstallerDocument(client, props.name);
      // An empty id tells the engine the document is gone.
      if (!state) return { id: "", props: {} };
      const outs: SsmInstallerDocumentOutputs = {
        ...props,
        mode: modeOf(state.content, fixedOf(props)),
        defaultVersion: state.defaultVersion,
        latestVersion: state.latestVersion,
        contentDigest: documents().contentDigest(state.content),
      };
      return { id, props: outs };
    } finally {
      client.destroy();
    }
  },

  async update(_id: string, olds: SsmInstallerDocumentOutputs, news: SsmInstallerDocumentInputs) {
    const client = ssmClient(news.region);
    try {
      const { state } = await documents().updateInstallerDocument(client, {
        name: news.name,
        mode: news.mode,
        runtime: fixedOf(news),
      });
      if (!sameTags(olds.tags, news.tags)) await retag(client, news.name, olds.tags, news.tags);
      const outs: SsmInstallerDocumentOutputs = {
        ...news,
        arn: olds.arn,
        defaultVersion: state.defaultVersion,
        latestVersion: state.latestVersion,
        contentDigest: documents().contentDigest(state.content),
      };
      return { outs };
    } finally {
      client.destroy();
    }
  },

  async delete(_id: string, props: SsmInstallerDocumentOutputs) {
    const client = ssmClient(props.region);
    try {
      await documents().deleteInstallerDocument(client, props.name);
    } finally {
      client.destroy();
    }
  },
};
