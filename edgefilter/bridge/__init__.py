"""The fleet bridge (``edgefilter bridge -c bridge.yaml``): daemons' kept frames and drift into MQTT and
S3-compatible object storage, with a bounded on-disk outbox in between. Needs the ``bridge`` extra
(paho-mqtt, boto3). See docs/fleet.md."""
