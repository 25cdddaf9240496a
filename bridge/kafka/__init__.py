"""Everything that speaks Kafka (the only package that imports aiokafka)."""
