"""Test support shared by every suite: waiting on a condition, Kafka topics, the test database's URL,
and the recording email/SMS backends the end-to-end processes send through."""
