#!/bin/sh
# Post push.json as GitHub would: signed with the hook secret, with a delivery id.
#   EVENTING_SECRET_GITHUB_WEBHOOK_TOKEN=... examples/github/send-push.sh [URL]
set -eu
here=$(dirname "$0")
url=${1:-http://127.0.0.1:8080/webhooks/default/app-repo}
secret=${EVENTING_SECRET_GITHUB_WEBHOOK_TOKEN:?set the hook secret}
signature=$(openssl dgst -sha256 -hmac "$secret" -r "$here/push.json" | cut -d' ' -f1)
delivery=$(python3 -c 'import uuid; print(uuid.uuid4())')
curl -sS -i "$url" \
  -H "Content-Type: application/json" \
  -H "X-GitHub-Event: push" \
  -H "X-GitHub-Delivery: $delivery" \
  -H "X-Hub-Signature-256: sha256=$signature" \
  --data-binary "@$here/push.json"
