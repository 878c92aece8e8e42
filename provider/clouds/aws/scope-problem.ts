/** How a failed AWS scan reads as a task: a permission the discovery role lacks, and which policy prints it. */

const PERMISSION_CODES = /AccessDenied|UnauthorizedOperation|AuthFailure|Unauthorized|Forbidden|InvalidClientTokenId/i;

/** The issue type and fix of an AWS scope that was denied; undefined (a fetch failure) for any other error. */
export function awsScopeProblem(e: { code: string; message: string }): { issueType: string; fix: string } | undefined {
  const permission = PERMISSION_CODES.test(e.code) || /not authorized|access denied/i.test(e.message);
  if (!permission) return undefined;
  if (/assum/i.test(e.message))
    return {
      issueType: "permission-denied",
      fix:
        "Fix: allow the runtime's identity sts:AssumeRole on assume_role.role_arn (or assume_role.role_name in every " +
        "member account) and make the role's trust policy trust it with the same external_id; " +
        "`discovery policy aws --config FILE` prints both policies.",
    };
  return {
    issueType: "permission-denied",
    fix:
      "Fix: grant the runtime's identity the policy `discovery policy aws --config FILE` prints " +
      "(ec2:DescribeInstances, ssm:DescribeInstanceInformation, ssm:SendCommand, ...).",
  };
}
