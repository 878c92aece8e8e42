/**
 * The SSM part of the benchmark control plane (bench/control-plane.ts), in SSM's JSON 1.1 protocol (the action in
 * `X-Amz-Target: AmazonSSM.<Action>`): DescribeInstanceInformation, DescribeDocument, SendCommand (at most 50
 * instance ids, as AWS enforces), GetCommandInvocation and ListCommandInvocations. Every instance the plane knows
 * runs the SSM agent and is Online; every command succeeds at once. SSM's request limits are not published per
 * action, so no bucket is enforced here (FIELD-NOTES gives none).
 */
import type { PlaneAnswer, PlaneInstance } from "./control-plane-ec2";

/** SendCommand's and DescribeInstanceInformation's most instance ids per call. */
export const SSM_MAX_IDS = 50;

/** AWS's JSON error answer. */
export function jsonError(code: string, message: string): PlaneAnswer {
  return { status: 400, body: JSON.stringify({ __type: `com.amazonaws.ssm#${code}`, message }) };
}

interface Command {
  id: string;
  document: string;
  instanceIds: string[];
  requested: number;
}

/** SSM's state in one control plane: the commands sent. */
export class PlaneSsm {
  private readonly commands = new Map<string, Command>();
  private serial = 0;

  /** Documents DescribeDocument and SendCommand accept. */
  constructor(private readonly documents: ReadonlySet<string> = new Set(["AWS-RunShellScript"])) {}

  /** Answers one SSM action for the caller's account and region, or undefined when the action is not served. */
  answer(
    action: string,
    input: Record<string, unknown>,
    byId: ReadonlyMap<string, PlaneInstance>,
    account: string,
    region: string,
  ): PlaneAnswer | undefined {
    const mine = (id: string) => {
      const i = byId.get(id);
      return i !== undefined && i.account === account && i.region === region;
    };
    const ok = (o: unknown): PlaneAnswer => ({ status: 200, body: JSON.stringify(o) });
    switch (action) {
      case "DescribeInstanceInformation": {
        const filters = (input.Filters ?? []) as { Key?: string; Values?: string[] }[];
        const unknown = filters.find((f) => f.Key !== "InstanceIds");
        if (unknown) return jsonError("InvalidFilterKey", `filter key ${unknown.Key} is not served by the bench`);
        const ids = filters.flatMap((f) => f.Values ?? []);
        if (ids.length === 0) return jsonError("InvalidInstanceInformationFilterValue", "name the instance ids");
        if (ids.length > SSM_MAX_IDS)
          return jsonError("InvalidInstanceInformationFilterValue", `at most ${SSM_MAX_IDS} InstanceIds`);
        const max = input.MaxResults as number | undefined;
        if (max !== undefined && (max < 5 || max > 50)) return jsonError("ValidationException", "MaxResults 5 to 50");
        return ok({
          InstanceInformationList: ids.filter(mine).map((id) => ({
            InstanceId: id,
            PingStatus: "Online",
            LastPingDateTime: Date.now() / 1000,
            AgentVersion: "3.3.0.0",
            IsLatestVersion: true,
            PlatformType: "Linux",
            PlatformName: "Amazon Linux",
            PlatformVersion: "2023",
            ResourceType: "EC2Instance",
            IPAddress: byId.get(id)!.privateIp,
            ComputerName: id,
          })),
        });
      }
      case "DescribeDocument": {
        const name = String(input.Name ?? "");
        if (!this.documents.has(name)) return jsonError("InvalidDocument", `document ${name} does not exist`);
        return ok({ Document: { Name: name, Status: "Active", DocumentType: "Command", DocumentVersion: "1" } });
      }
      case "SendCommand": {
        const ids = (input.InstanceIds ?? []) as string[];
        const document = String(input.DocumentName ?? "");
        if (ids.length === 0 || ids.length > SSM_MAX_IDS)
          return jsonError("ValidationException", `InstanceIds must hold 1 to ${SSM_MAX_IDS} ids, not ${ids.length}`);
        if (!this.documents.has(document)) return jsonError("InvalidDocument", `document ${document} does not exist`);
        if (!ids.every(mine)) return jsonError("InvalidInstanceId", "an instance is not managed in this account and region"); // prettier-ignore
        const c: Command = { id: `cmd-${++this.serial}`, document, instanceIds: ids, requested: Date.now() };
        this.commands.set(c.id, c);
        return ok({
          Command: {
            CommandId: c.id,
            DocumentName: document,
            InstanceIds: ids,
            Status: "Pending",
            RequestedDateTime: c.requested / 1000,
            TargetCount: ids.length,
          },
        });
      }
      case "GetCommandInvocation": {
        const c = this.commands.get(String(input.CommandId));
        const id = String(input.InstanceId);
        if (!c || !c.instanceIds.includes(id)) return jsonError("InvocationDoesNotExist", "no such invocation");
        return ok({
          CommandId: c.id,
          InstanceId: id,
          DocumentName: c.document,
          Status: "Success",
          StatusDetails: "Success",
          ResponseCode: 0,
          StandardOutputContent: "",
          StandardErrorContent: "",
        });
      }
      case "ListCommandInvocations": {
        const c = input.CommandId ? this.commands.get(String(input.CommandId)) : undefined;
        const chosen = c ? [c] : input.CommandId ? [] : [...this.commands.values()];
        return ok({
          CommandInvocations: chosen.flatMap((x) =>
            x.instanceIds
              .filter((id) => !input.InstanceId || id === input.InstanceId)
              .map((id) => ({
                CommandId: x.id,
                InstanceId: id,
                DocumentName: x.document,
                RequestedDateTime: x.requested / 1000,
                Status: "Success",
                StatusDetails: "Success",
              })),
          ),
        });
      }
      default:
        return undefined;
    }
  }

  /** Commands sent so far. */
  sent(): number {
    return this.commands.size;
  }
}
