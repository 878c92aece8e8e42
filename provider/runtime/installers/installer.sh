#!/bin/sh
# pulumi-discovery installer (__SCRIPT_NAME__): joins this VM to the discovery runtime without shared
# secrets, proving its identity from the cloud metadata service, and installs what the runtime issues.
#   curl -sS https://<runtime>/webapi/scripts/installer/__SCRIPT_NAME__ | DISCOVERY_TOKEN=<token> sh
# (`sh -s <token>` works too for the ec2 and iam methods, whose token names are not secret.)
# Needs only sh, curl, openssl and OpenSSH. No key, token or signature is ever a command's argument (ps shows
# those to every user): they travel through pipes, curl's stdin and shell variables. Environment (all optional):
#   DISCOVERY_TOKEN         the join token's name (for the token method: the secret itself)
#   DISCOVERY_JOIN_METHOD   ec2 | iam | gcp | azure | token (default iam)
#   DISCOVERY_REJOIN        true: join again although already joined (CA rotation, forced reinstall)
#   DISCOVERY_CA_PIN        sha256//<base64> public key pin of the runtime's TLS certificate
#   DISCOVERY_CA_FILE       CA bundle for the runtime's TLS certificate (instead of a pin)
#   DISCOVERY_DATA_DIR      where credentials are kept (default /var/lib/discovery)
#   DISCOVERY_SSHD_CONFIG   sshd_config to edit in agentless mode (default /etc/ssh/sshd_config)
#   DISCOVERY_HOST_KEY      host private key to certify (agentless default /etc/ssh/ssh_host_ed25519_key)
#   DISCOVERY_SSHD_RESTART  command that restarts sshd (default: systemctl, then service, then SIGHUP)
#   DISCOVERY_STS_ENDPOINT  STS endpoint the iam method signs for (default AWS_ENDPOINT_URL_STS,
#                           AWS_ENDPOINT_URL, else https://sts.amazonaws.com)
#   AWS_EC2_METADATA_SERVICE_ENDPOINT  instance metadata endpoint (default http://169.254.169.254)
#   GCE_METADATA_HOST       gcp: metadata server host[:port] (default metadata.google.internal)
#   AZURE_IMDS_ENDPOINT     azure: instance metadata endpoint (default http://169.254.169.254)
set -eu
umask 077

PROXY={{ .PublicProxyAddr }}
CLUSTER={{ .ClusterName }}
MODE=__MODE__
TOKEN="${DISCOVERY_TOKEN:-${1:-}}"
# Kept in a shell variable only: the commands run below need not inherit it.
unset DISCOVERY_TOKEN
METHOD="${DISCOVERY_JOIN_METHOD:-iam}"
REJOIN="${DISCOVERY_REJOIN:-false}"
DATA_DIR="${DISCOVERY_DATA_DIR:-/var/lib/discovery}"
SSHD_CONFIG="${DISCOVERY_SSHD_CONFIG:-/etc/ssh/sshd_config}"
IMDS="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"
IMDS="${IMDS%/}"
STS="${DISCOVERY_STS_ENDPOINT:-${AWS_ENDPOINT_URL_STS:-${AWS_ENDPOINT_URL:-https://sts.amazonaws.com}}}"
STS="${STS%/}"
if [ "$MODE" = agentless ]; then HOST_KEY="${DISCOVERY_HOST_KEY:-/etc/ssh/ssh_host_ed25519_key}"
else HOST_KEY="${DISCOVERY_HOST_KEY:-$DATA_DIR/host_key}"; fi
MARK="# managed by pulumi-discovery"
NL='
'

die() { echo "discovery-installer: error: $*" >&2; exit 1; }
log() { echo "discovery-installer: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not found on PATH"; }
json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n\r'; }
json_str() { printf '%s' "$1" | tr -d '\n' | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }
json_list() { printf '%s' "$1" | tr -d '\n' | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\[\([^]]*\)\].*/\1/p" | tr ',' '\n' | sed 's/^[[:space:]]*"//; s/"[[:space:]]*$//'; }

# begin hmac: HMAC-SHA256 with the key in shell variables only (openssl's -macopt key:... would put it in argv).
# test/unit/installer-hmac.test.ts runs this part on its own against RFC 4231.
tohex() { od -An -v -tx1 | tr -d ' \n'; }
sha256hex() { openssl dgst -sha256 -binary | tohex; }
# Writes the bytes of hex string $1, each XOR $2 (default 0), through the printf builtin.
hexbytes() {
  h=$1 esc=''
  while [ -n "$h" ]; do
    r=${h#??}; v=$((0x${h%"$r"} ^ ${2:-0})); h=$r
    esc="$esc\\$((v / 64))$((v / 8 % 8))$((v % 8))"
  done
  printf "$esc"
}
# HMAC-SHA256 (RFC 2104) of stdin under the key whose hex is $1; prints the hex digest.
hmac() {
  k=$1
  [ ${#k} -le 128 ] || k=$(hexbytes "$k" | sha256hex)
  while [ ${#k} -lt 128 ]; do k="${k}00"; done
  inner=$({ hexbytes "$k" 54; cat; } | sha256hex)
  { hexbytes "$k" 92; hexbytes "$inner"; } | sha256hex
}
# SigV4's signing key (hex) for secret key $1 and scope parts $2...: date, region, service, aws4_request.
signing_key() {
  k=$(printf '%s' "AWS4$1" | tohex); shift
  for part in "$@"; do k=$(printf '%s' "$part" | hmac "$k"); done
  printf '%s' "$k"
}
# end hmac

need curl
need openssl
need ssh-keygen
[ -n "$TOKEN" ] || die "no join token: set DISCOVERY_TOKEN (curl ... | DISCOVERY_TOKEN=<token> sh)"
case "$METHOD" in ec2 | iam | gcp | azure | token) ;; *) die "DISCOVERY_JOIN_METHOD must be ec2, iam, gcp, azure or token, not $METHOD" ;; esac
case "$REJOIN" in true | false) ;; *) die "DISCOVERY_REJOIN must be true or false, not $REJOIN" ;; esac
# A token-method token is a secret, and ps shows every process's arguments to every user.
[ "$METHOD" != token ] || [ -z "${1:-}" ] ||
  die "the token method's token is a secret: pass it in DISCOVERY_TOKEN (curl ... | DISCOVERY_TOKEN=<token> sh), not as an argument, and rotate it: it was visible in ps"

# A challenge for this method and token from the runtime (iam signs it into STS headers, azure asks IMDS to sign it).
runtime_challenge() {
  resp=$(printf '{"method":"%s","token":"%s"}' "$METHOD" "$(json_escape "$TOKEN")" | runtime /v1/join/challenge) ||
    die "the runtime refused a challenge: $resp"
  challenge=$(json_str "$resp" challenge)
  case "$challenge" in '' | *[!A-Za-z0-9_-]*) die "the runtime sent no challenge: $resp" ;; esac
  printf '%s' "$challenge"
}

# POSTs stdin (JSON) to the runtime path $1: the body, which holds the token and signatures, never is an argument.
runtime() {
  set -- -sS --fail-with-body --max-time 60 -X POST -H 'Content-Type: application/json' --data-binary @- "https://$PROXY$1"
  if [ -n "${DISCOVERY_CA_PIN:-}" ]; then curl -k --pinnedpubkey "$DISCOVERY_CA_PIN" "$@"
  elif [ -n "${DISCOVERY_CA_FILE:-}" ]; then curl --cacert "$DISCOVERY_CA_FILE" "$@"
  else curl "$@"; fi
}

# One run at a time: a second run waits for the first (up to 5 minutes), a stale lock is taken over.
mkdir -p "$DATA_DIR"
LOCK="$DATA_DIR/install.lock"
waited=0
while ! mkdir "$LOCK" 2>/dev/null; do
  holder=$(cat "$LOCK/pid" 2>/dev/null || true)
  if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then rm -rf "$LOCK"; continue; fi
  [ "$waited" -lt 300 ] || die "another installer run (pid ${holder:-?}) still holds $LOCK after 5 minutes"
  sleep 1
  waited=$((waited + 1))
done
echo $$ >"$LOCK/pid"
trap 'rm -rf "$LOCK"' EXIT
trap 'exit 1' INT TERM

imds_token=""
imds() {
  if [ -z "$imds_token" ]; then
    imds_token=$(curl -sS -f --max-time 10 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$IMDS/latest/api/token") ||
      die "cannot get an IMDSv2 token from $IMDS (is this an EC2 instance with the metadata service enabled?)"
  fi
  # The session token goes in as a header of a curl config read from stdin, not as -H on the command line.
  printf 'header = "X-aws-ec2-metadata-token: %s"\n' "$imds_token" | curl -sS -f --max-time 10 -K - "$IMDS$1" ||
    die "cannot read $1 from $IMDS"
}

# sshd_config: drop the block a previous run managed (the marker line and the HostKey, HostCertificate and
# TrustedUserCAKeys lines after it), then write one block before the first Match, Include or TrustedUserCAKeys
# (sshd keeps the first TrustedUserCAKeys it reads) - the same edit as `discovery join --openssh-config`.
configure_sshd() {
  [ -f "$SSHD_CONFIG" ] || die "sshd config $SSHD_CONFIG does not exist (set DISCOVERY_SSHD_CONFIG)"
  case "$HOST_KEY$DATA_DIR" in *[[:space:]]* | *'"'*) die "paths for sshd_config must not contain spaces or quotes" ;; esac
  tmp="$SSHD_CONFIG.discovery.tmp"
  awk -v mark="$MARK" -v lines="HostKey $HOST_KEY${NL}HostCertificate $HOST_KEY-cert.pub${NL}TrustedUserCAKeys $DATA_DIR/user_ca.pub" '
    function kw(line,   m) {
      if (!match(line, /^[ \t]*[A-Za-z]+([ \t]|=)/)) return ""
      m = substr(line, RSTART, RLENGTH); gsub(/[ \t=]/, "", m); return tolower(m)
    }
    function owned(w) { return w == "hostkey" || w == "hostcertificate" || w == "trustedusercakeys" }
    { raw[NR] = $0 }
    END {
      n = split(lines, L, "\n"); k = 0; first = -1
      for (i = 1; i <= NR; i++) {
        line = raw[i]; sub(/[ \t\r]+$/, "", line)
        if (line == mark) {
          if (first < 0) first = k
          split("", seen)
          while (i < NR && owned(kw(raw[i + 1])) && !(kw(raw[i + 1]) in seen)) { seen[kw(raw[i + 1])] = 1; i++ }
          continue
        }
        kept[++k] = raw[i]
      }
      at = 0
      for (i = 1; i <= k; i++) { w = kw(kept[i]); if (w == "match" || w == "include" || w == "trustedusercakeys") { at = i; break } }
      if (first >= 0 && (at == 0 || first + 1 < at)) at = first + 1
      if (at == 0) at = k + 1
      for (i = 1; i <= k + 1; i++) {
        if (i == at) { print mark; for (j = 1; j <= n; j++) print L[j] }
        if (i <= k) print kept[i]
      }
    }
  ' "$SSHD_CONFIG" >"$tmp"
  # Only a config sshd accepts is installed; with no sshd to ask, nothing is.
  sshd_bin=$(command -v sshd 2>/dev/null || echo /usr/sbin/sshd)
  if [ ! -x "$sshd_bin" ]; then
    rm -f "$tmp"
    die "no sshd found on PATH or at /usr/sbin/sshd to check the edited config with; $SSHD_CONFIG is unchanged: install the OpenSSH server (or put its sshd on PATH) and rerun"
  fi
  if ! "$sshd_bin" -t -f "$tmp" 2>"$tmp.err"; then
    err=$(cat "$tmp.err"); rm -f "$tmp" "$tmp.err"
    die "$SSHD_CONFIG with the discovery block does not pass 'sshd -t', so it is unchanged: fix what sshd reports (check with: sshd -t -f $SSHD_CONFIG) and rerun: $err"
  fi
  rm -f "$tmp.err"
  if cmp -s "$tmp" "$SSHD_CONFIG"; then rm -f "$tmp"; return 1; fi
  # A copy of the original (cp -p keeps its mode, owner and group) takes the checked content and is renamed
  # over it: sshd never reads a half-written file, and a 0600 config stays 0600.
  if ! { cp -p "$SSHD_CONFIG" "$tmp.new" && cat "$tmp" >"$tmp.new" && mv "$tmp.new" "$SSHD_CONFIG"; }; then
    rm -f "$tmp" "$tmp.new"
    die "could not replace $SSHD_CONFIG (is its file system full or read-only?); it is unchanged"
  fi
  rm -f "$tmp"
  return 0
}

restart_sshd() {
  if [ -n "${DISCOVERY_SSHD_RESTART:-}" ]; then sh -c "$DISCOVERY_SSHD_RESTART" || die "DISCOVERY_SSHD_RESTART failed"
  elif command -v systemctl >/dev/null 2>&1 && systemctl restart ssh 2>/dev/null; then :
  elif command -v systemctl >/dev/null 2>&1 && systemctl restart sshd 2>/dev/null; then :
  elif command -v service >/dev/null 2>&1 && service ssh restart 2>/dev/null; then :
  elif [ -f /run/sshd.pid ] && kill -HUP "$(cat /run/sshd.pid)"; then :
  else die "could not restart sshd; set DISCOVERY_SSHD_RESTART to the command that does"; fi
  log "sshd restarted"
}

# DISCOVERY_REJOIN=true: join again although already joined: an admin forced a reinstall (the node's record is
# gone), or a CA rotation is under way (the runtime certifies the same host key with the new keys); sshd reloads.
if [ "$REJOIN" = true ] && [ -f "$DATA_DIR/node" ]; then log "joining again as $(cat "$DATA_DIR/node")"
elif [ -f "$DATA_DIR/node" ] && [ -s "$HOST_KEY-cert.pub" ] && [ -s "$DATA_DIR/user_ca.pub" ]; then
  log "already joined as $(cat "$DATA_DIR/node")"
  if [ "$MODE" = agentless ] && configure_sshd; then restart_sshd; fi
  exit 0
fi

if [ ! -f "$HOST_KEY" ]; then
  mkdir -p "$(dirname "$HOST_KEY")"
  ssh-keygen -q -t ed25519 -N '' -C "$CLUSTER" -f "$HOST_KEY" || die "cannot create the host key $HOST_KEY"
fi
[ -f "$HOST_KEY.pub" ] || ssh-keygen -y -f "$HOST_KEY" >"$HOST_KEY.pub" || die "cannot read the public half of $HOST_KEY"
pub=$(cut -d' ' -f1,2 "$HOST_KEY.pub")
common="\"method\":\"$METHOD\",\"token\":\"$(json_escape "$TOKEN")\",\"host_public_key\":\"$(json_escape "$pub")\""

case "$METHOD" in
token) body="{$common}" ;;
ec2)
  iid=$(imds /latest/dynamic/instance-identity/rsa2048 | tr -d '\n\r ')
  [ -n "$iid" ] || die "the metadata service returned an empty identity document"
  body="{$common,\"iid\":\"$iid\"}"
  ;;
gcp)
  # Audience = this cluster; format=full adds the compute_engine claims. Request via a curl config on stdin.
  gce="${GCE_METADATA_HOST:-metadata.google.internal}"
  idt=$(printf 'header = "Metadata-Flavor: Google"\nurl = "http://%s/computeMetadata/v1/instance/service-accounts/default/identity?audience=%s&format=full"\n' "$gce" "$CLUSTER" |
    curl -sS -f --max-time 10 -K -) || die "cannot get an identity token from the metadata server at $gce (is this a GCE VM?)"
  case "$idt" in '' | *[!A-Za-z0-9._-]*) die "the metadata server's identity token is not a JWT" ;; esac
  body="{$common,\"id_token\":\"$idt\"}"
  ;;
azure)
  # IMDS signs the runtime's challenge as the attested document's nonce; the VM's managed identity token for ARM
  # names its resource group. Both requests go through a curl config on stdin; the token stays in a variable.
  az="${AZURE_IMDS_ENDPOINT:-http://169.254.169.254}"; az="${az%/}"
  challenge=$(runtime_challenge) || exit 1
  att=$(printf 'header = "Metadata: true"\nurl = "%s/metadata/attested/document?api-version=2020-09-01&nonce=%s"\n' "$az" "$challenge" |
    curl -sS -f --max-time 10 -K -) || die "cannot get an attested document from Azure IMDS at $az (is this an Azure VM?)"
  sig=$(json_str "$att" signature | sed 's#\\/#/#g')
  case "$sig" in '' | *[!A-Za-z0-9+/=]*) die "Azure IMDS's attested document carries no signature" ;; esac
  mi=$(printf 'header = "Metadata: true"\nurl = "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%%3A%%2F%%2Fmanagement.azure.com%%2F"\n' "$az" |
    curl -sS -f --max-time 10 -K -) || die "cannot get a managed identity token from Azure IMDS at $az (does this VM have a managed identity?)"
  at=$(json_str "$mi" access_token)
  case "$at" in '' | *[!A-Za-z0-9._-]*) die "Azure IMDS's managed identity token is not a JWT" ;; esac
  body="{$common,\"challenge\":\"$challenge\",\"attested_data\":{\"encoding\":\"pkcs7\",\"signature\":\"$sig\"},\"access_token\":\"$at\"}"
  ;;
iam)
  role=$(imds /latest/meta-data/iam/security-credentials/ | head -n 1)
  [ -n "$role" ] || die "this instance has no instance profile: the iam method needs one"
  creds=$(imds "/latest/meta-data/iam/security-credentials/$role")
  ak=$(json_str "$creds" AccessKeyId); sk=$(json_str "$creds" SecretAccessKey); st=$(json_str "$creds" Token)
  [ -n "$ak" ] && [ -n "$sk" ] || die "the instance profile credentials of $role are incomplete"
  challenge=$(runtime_challenge) || exit 1
  # A SigV4-signed sts:GetCallerIdentity that carries the challenge among its signed headers.
  host=${STS#*://}; host=${host%%/*}
  amzdate=$(date -u +%Y%m%dT%H%M%SZ); day=${amzdate%%T*}; region=us-east-1
  req='Action=GetCallerIdentity&Version=2011-06-15'
  ctype='application/x-www-form-urlencoded; charset=utf-8'
  hdrs="content-type:$ctype${NL}host:$host${NL}x-amz-date:$amzdate${NL}"
  signed="content-type;host;x-amz-date"
  if [ -n "$st" ]; then hdrs="${hdrs}x-amz-security-token:$st${NL}"; signed="$signed;x-amz-security-token"; fi
  hdrs="${hdrs}x-discovery-challenge:$challenge${NL}"; signed="$signed;x-discovery-challenge"
  canonical="POST${NL}/${NL}${NL}${hdrs}${NL}${signed}${NL}$(printf '%s' "$req" | sha256hex)"
  scope="$day/$region/sts/aws4_request"
  tosign="AWS4-HMAC-SHA256${NL}$amzdate${NL}$scope${NL}$(printf '%s' "$canonical" | sha256hex)"
  sig=$(printf '%s' "$tosign" | hmac "$(signing_key "$sk" "$day" "$region" sts aws4_request)")
  auth="AWS4-HMAC-SHA256 Credential=$ak/$scope, SignedHeaders=$signed, Signature=$sig"
  h="\"content-type\":\"$ctype\",\"host\":\"$host\",\"x-amz-date\":\"$amzdate\",\"x-discovery-challenge\":\"$challenge\",\"authorization\":\"$auth\""
  [ -z "$st" ] || h="$h,\"x-amz-security-token\":\"$(json_escape "$st")\""
  placement=$(imds /latest/meta-data/placement/region 2>/dev/null | tr -cd 'a-z0-9-') # where the runtime looks the instance up
  body="{$common,\"challenge\":\"$challenge\",\"sts_request\":{\"url\":\"$STS/\",\"method\":\"POST\",\"headers\":{$h},\"body\":\"$req\"}${placement:+,\"aws_region\":\"$placement\"}}"
  ;;
esac

resp=$(printf '%s' "$body" | runtime /v1/join) ||
  die "the runtime refused the join: ${resp:-no answer from https://$PROXY}"
node=$(json_str "$resp" node_name)
cert=$(json_str "$resp" host_certificate)
[ -n "$node" ] && [ -n "$cert" ] || die "unexpected answer from the runtime: $resp"
printf '%s\n' "$cert" >"$HOST_KEY-cert.pub"
json_list "$resp" user_ca_public_keys >"$DATA_DIR/user_ca.pub"
json_list "$resp" host_ca_public_keys | sed "s/^/@cert-authority * /" >"$DATA_DIR/known_hosts"
chmod 644 "$HOST_KEY-cert.pub" "$DATA_DIR/user_ca.pub" "$DATA_DIR/known_hosts"
printf '%s\n' "$node" >"$DATA_DIR/node"
log "joined as $node"

if [ "$MODE" = agentless ]; then
  if configure_sshd; then log "updated $SSHD_CONFIG"; fi
  restart_sshd
fi
log "done"
