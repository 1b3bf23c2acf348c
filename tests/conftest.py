pytest_plugins = ["tests.kafka_support"]
