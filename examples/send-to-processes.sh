#!/usr/bin/env bash
# Post a few events to two eventing processes sharing one broker, e.g. the
# examples kafka-broker and rabbitmq-broker (their ingress
# ports: PORTS, default "8080 8081").
set -euo pipefail
read -r -a ports <<< "${PORTS:-8080 8081}"
n=0
for port in "${ports[@]}" "${ports[@]}"; do
  n=$((n + 1))
  curl -sS -o /dev/null -w "%{http_code} " "http://127.0.0.1:${port}/default/default" \
    -H 'ce-specversion: 1.0' -H "ce-id: order-${n}" -H 'ce-source: /example' \
    -H 'ce-type: com.example.order.created' -H "ce-partitionkey: customer-$((n % 2))" \
    -H 'Content-Type: application/json' -d "{\"order\": ${n}}"
  curl -sS -o /dev/null -w "%{http_code} " "http://127.0.0.1:${port}/default/default" \
    -H 'ce-specversion: 1.0' -H "ce-id: payment-${n}" -H 'ce-source: /example' \
    -H 'ce-type: com.example.payment.settled' -H 'Content-Type: application/json' \
    -d "{\"eur\": ${n}}"
done
echo
