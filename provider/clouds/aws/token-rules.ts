/**
 * What a pass can tell of an ec2 or iam token before installing: whether any allow rule can admit an instance of
 * a given account and region. The join proves the rest (the signed document, the caller ARN, the organization).
 */
import type { Token } from "../../model";
import { JoinRefusal } from "../../join/errors";
import type { AllowProblem } from "../plugin";
import { matchEc2Rule } from "./attest-ec2";

const fixFor = (token: Token, account: string, extra = "") =>
  `add an allow rule {aws_account: "${account}"${extra}} to spec.allow of token ${JSON.stringify(token.metadata.name)}` +
  " (`discovery apply -f`), or name a token that allows the account in the matcher's install.join_params.token_name";

/** An ec2 token admits an account and region when a rule names the account and lists the region, or no regions. */
export function ec2AllowProblem(token: Token, at: { account: string; region: string }): AllowProblem | undefined {
  try {
    matchEc2Rule({ accountId: at.account, region: at.region }, token);
    return undefined;
  } catch (e) {
    if (!(e instanceof JoinRefusal)) throw e;
    const regional = e.code === "ec2_region_not_allowed";
    return {
      reason: e.reason,
      fix: regional
        ? `add ${at.region} to aws_regions of the rule for account ${at.account} in token ${JSON.stringify(token.metadata.name)}`
        : fixFor(token, at.account),
    };
  }
}

/** The account field of an ARN glob, when the glob fixes it (no wildcard up to and in it). */
function arnGlobAccount(glob: string): string | undefined {
  const fields = glob.split(":");
  return fields.length > 4 && !fields.slice(0, 5).some((f) => /[*?]/.test(f)) ? fields[4] : undefined;
}

/**
 * An iam token may admit an account unless every rule names another: by aws_account, or by an aws_arn whose
 * account field is fixed. Organization rules and ARN globs with a wildcard account are decided at the join.
 */
export function iamAllowProblem(token: Token, at: { account: string }): AllowProblem | undefined {
  const may = (token.spec.allow ?? []).some((r) => {
    if (r.aws_account === undefined && r.aws_arn === undefined && r.aws_organization_id === undefined) return false;
    if (r.aws_account !== undefined && r.aws_account !== at.account) return false;
    const arnAccount = r.aws_arn === undefined ? undefined : arnGlobAccount(r.aws_arn);
    return arnAccount === undefined || arnAccount === at.account;
  });
  if (may) return undefined;
  return {
    reason: `AWS account ${at.account}: no rule of token ${JSON.stringify(token.metadata.name)} allows it`,
    fix: fixFor(token, at.account),
  };
}
