"""MqttSource: the adapter, the paho connection driven on the asyncio loop, our PUBLISH
decoder, the message binding and the resource model."""
