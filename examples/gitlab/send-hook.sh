#!/bin/sh
# Post merge-request.json as GitLab would: the token verbatim, an event UUID.
#   EVENTING_SECRET_GITLAB_WEBHOOK_TOKEN=... examples/gitlab/send-hook.sh [URL]
set -eu
here=$(dirname "$0")
url=${1:-http://127.0.0.1:8080/webhooks/default/app-project}
token=${EVENTING_SECRET_GITLAB_WEBHOOK_TOKEN:?set the hook secret token}
event_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
curl -sS -i "$url" \
  -H "Content-Type: application/json" \
  -H "X-Gitlab-Event: Merge Request Hook" \
  -H "X-Gitlab-Event-UUID: $event_uuid" \
  -H "X-Gitlab-Token: $token" \
  --data-binary "@$here/merge-request.json"
