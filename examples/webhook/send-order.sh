#!/bin/sh
# Post a signed order notification to the WebhookSource.
#   EVENTING_SECRET_SHOP_WEBHOOK_TOKEN=... examples/webhook/send-order.sh [URL]
set -eu
url=${1:-http://127.0.0.1:8080/hooks/shop/orders}
secret=${EVENTING_SECRET_SHOP_WEBHOOK_TOKEN:?set the shared secret}
body='{"order": 1042, "total": "19.90", "currency": "EUR"}'
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
curl -sS -i "$url" \
  -H "Content-Type: application/json" \
  -H "Idempotency-Key: order-1042" \
  -H "X-Order-Id: 1042" \
  -H "X-Shop-Region: eu" \
  -H "X-Shop-Signature: sha256=$signature" \
  --data-binary "$body"
