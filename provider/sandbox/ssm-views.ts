import { FleetInstance, pingStatus } from "./fleet";
import { CommandRecord, Invocation, isTerminal, PluginResult } from "./ssm-commands";
import { SsmApiError } from "./ssm-documents";

/** How much output GetCommandInvocation returns of each stream, as AWS does. */
export const INVOCATION_OUTPUT_CHARS = 24_000;
/** How much of a plugin's output ListCommandInvocations (Details) returns, as AWS does. */
export const PLUGIN_OUTPUT_CHARS = 2_500;

// awsJson1_1 timestamps are epoch seconds; GetCommandInvocation's execution times are ISO text instead.
const epoch = (d: Date | undefined) => (d ? d.getTime() / 1000 : undefined);
const iso = (d: Date | undefined) => (d ? d.toISOString() : "");

/** One page of `items`: NextToken is the offset, opaque to callers as AWS's is. */
export function page<T>(items: T[], maxResults: unknown, nextToken: unknown, limits: [number, number]) {
  const [min, max] = limits;
  if (
    maxResults !== undefined &&
    (!Number.isInteger(maxResults) || Number(maxResults) < min || Number(maxResults) > max)
  )
    throw new SsmApiError(
      "ValidationException",
      `1 validation error detected: Value '${String(maxResults)}' at 'maxResults' failed to satisfy constraint: ` +
        `Member must have value between ${min} and ${max}`,
    );
  let start = 0;
  if (nextToken !== undefined && nextToken !== null && nextToken !== "") {
    const decoded = /^off:(\d+)$/.exec(Buffer.from(String(nextToken), "base64url").toString("utf8"));
    if (!decoded) throw new SsmApiError("InvalidNextToken", "The specified token isn't valid.");
    start = Number(decoded[1]);
  }
  const size = maxResults === undefined ? max : Number(maxResults);
  const slice = items.slice(start, start + size);
  const more = start + size < items.length;
  return { items: slice, nextToken: more ? Buffer.from(`off:${start + size}`).toString("base64url") : undefined };
}

/** DescribeInstanceInformation's entry for a registered instance. */
export function instanceInformation(inst: FleetInstance) {
  const windows = inst.platform === "Windows";
  return {
    InstanceId: inst.instanceId,
    PingStatus: pingStatus(inst),
    // An online agent pinged just now; a lost one last pinged when it was lost.
    LastPingDateTime: epoch(pingStatus(inst) === "Online" ? new Date() : inst.pingChangedAt),
    AgentVersion: "3.3.1142.0",
    IsLatestVersion: true,
    PlatformType: inst.platform,
    PlatformName: windows ? "Microsoft Windows Server 2022 Datacenter" : "Ubuntu",
    PlatformVersion: windows ? "10.0.20348" : "22.04",
    ResourceType: "EC2Instance",
    IPAddress: inst.privateIp,
    ComputerName: `ip-${inst.privateIp.replace(/\./g, "-")}.${inst.region === "us-east-1" ? "ec2.internal" : `${inst.region}.compute.internal`}`,
    SourceId: inst.instanceId,
    SourceType: "AWS::EC2::Instance",
  };
}

/** A command's overall status and counts, from its invocations (AWS's aggregation, simplified). */
export function commandStatus(record: CommandRecord) {
  const all = [...record.invocations.values()];
  const count = (f: (i: Invocation) => boolean) => all.filter(f).length;
  const done = count((i) => isTerminal(i.status));
  const deliveryTimedOut = count((i) => i.statusDetails === "DeliveryTimedOut");
  const errors = count(
    (i) => i.status === "Failed" || (i.status === "TimedOut" && i.statusDetails !== "DeliveryTimedOut"),
  );
  let status: string;
  let details: string;
  if (done < all.length) {
    const started = all.some((i) => i.status !== "Pending");
    [status, details] = started ? ["InProgress", "InProgress"] : ["Pending", "Pending"];
  } else if (count((i) => i.status === "Success") === all.length) [status, details] = ["Success", "Success"];
  else if (count((i) => i.status === "Cancelled") > 0 && errors === 0) [status, details] = ["Cancelled", "Cancelled"];
  else if (count((i) => i.status === "TimedOut") === count((i) => i.status !== "Success"))
    [status, details] = ["TimedOut", deliveryTimedOut === all.length ? "Delivery Timed Out" : "Execution Timed Out"];
  else [status, details] = ["Failed", errors === all.length ? "Failed" : "Incomplete"];
  return { status, details, done, errors, deliveryTimedOut };
}

/** The `Command` object of SendCommand and ListCommands. */
export function commandView(record: CommandRecord) {
  const s = commandStatus(record);
  return {
    CommandId: record.commandId,
    DocumentName: record.plan.documentName,
    DocumentVersion: record.plan.documentVersion,
    Comment: record.comment,
    ExpiresAfter: epoch(new Date(record.requestedAt.getTime() + record.timeoutSeconds * 1000)),
    Parameters: record.parameters,
    InstanceIds: record.instanceIds,
    Targets: [],
    RequestedDateTime: epoch(record.requestedAt),
    Status: s.status,
    StatusDetails: s.details,
    OutputS3Region: record.region,
    OutputS3BucketName: "",
    OutputS3KeyPrefix: "",
    MaxConcurrency: "50",
    MaxErrors: "0",
    TargetCount: record.invocations.size,
    CompletedCount: s.done,
    ErrorCount: s.errors,
    DeliveryTimedOutCount: s.deliveryTimedOut,
    ServiceRole: "",
    NotificationConfig: { NotificationArn: "", NotificationEvents: [], NotificationType: "" },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
    TimeoutSeconds: record.timeoutSeconds,
  };
}

// AWS's combined plugin output: stdout, then stderr after a marker line.
function pluginOutput(p: PluginResult): string {
  const text = p.stderr ? `${p.stdout}\n----------ERROR-------\n${p.stderr}` : p.stdout;
  return text.slice(0, PLUGIN_OUTPUT_CHARS);
}

/** An entry of ListCommandInvocations; `details` adds CommandPlugins. */
export function invocationView(record: CommandRecord, inv: Invocation, details: boolean) {
  return {
    CommandId: record.commandId,
    InstanceId: inv.instanceId,
    InstanceName: "",
    Comment: record.comment,
    DocumentName: record.plan.documentName,
    DocumentVersion: record.plan.documentVersion,
    RequestedDateTime: epoch(record.requestedAt),
    Status: inv.status,
    StatusDetails: inv.statusDetails,
    TraceOutput: "",
    StandardOutputUrl: "",
    StandardErrorUrl: "",
    CommandPlugins: details
      ? inv.plugins.map((p) => ({
          Name: p.name,
          Status: p.status,
          StatusDetails: p.statusDetails,
          ResponseCode: p.responseCode,
          ResponseStartDateTime: epoch(p.startedAt),
          ResponseFinishDateTime: epoch(p.endedAt),
          Output: pluginOutput(p),
          StandardOutputUrl: "",
          StandardErrorUrl: "",
          OutputS3Region: record.region,
          OutputS3BucketName: "",
          OutputS3KeyPrefix: "",
        }))
      : [],
    ServiceRole: "",
    NotificationConfig: { NotificationArn: "", NotificationEvents: [], NotificationType: "" },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
  };
}

function elapsed(start: Date | undefined, end: Date | undefined): string {
  if (!start) return "";
  return `PT${(((end ?? new Date()).getTime() - start.getTime()) / 1000).toFixed(3)}S`;
}

/** GetCommandInvocation's answer: one plugin's when `pluginName` is given (required for multi-step documents). */
export function getInvocationView(record: CommandRecord, inv: Invocation, pluginName: unknown) {
  let plugin: PluginResult;
  if (pluginName !== undefined && pluginName !== null && pluginName !== "") {
    const found = inv.plugins.find((p) => p.name === pluginName);
    if (!found) throw new SsmApiError("InvalidPluginName", `The plugin name is not valid: ${String(pluginName)}`);
    plugin = found;
  } else if (inv.plugins.length === 1) plugin = inv.plugins[0];
  else
    throw new SsmApiError(
      "InvalidPluginName",
      `document ${record.plan.documentName} has ${inv.plugins.length} steps: name one with PluginName`,
    );
  const single = inv.plugins.length === 1;
  return {
    CommandId: record.commandId,
    InstanceId: inv.instanceId,
    Comment: record.comment,
    DocumentName: record.plan.documentName,
    DocumentVersion: record.plan.documentVersion,
    PluginName: plugin.name,
    ResponseCode: plugin.responseCode,
    ExecutionStartDateTime: iso(plugin.startedAt),
    ExecutionElapsedTime: elapsed(plugin.startedAt, plugin.endedAt),
    ExecutionEndDateTime: iso(plugin.endedAt),
    // With one step the invocation and the plugin are the same thing; a cancel or timeout shows on both.
    Status: single ? inv.status : plugin.status,
    StatusDetails: single ? inv.statusDetails : plugin.statusDetails,
    StandardOutputContent: plugin.stdout.slice(0, INVOCATION_OUTPUT_CHARS),
    StandardOutputUrl: "",
    StandardErrorContent: plugin.stderr.slice(0, INVOCATION_OUTPUT_CHARS),
    StandardErrorUrl: "",
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
  };
}
