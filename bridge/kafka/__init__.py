"""The broker, and the only package that imports aiokafka.

base.py        the seam the service sees, broker-neutral: `Broker`, the consumer, the transactional publisher,
               the records; offsets.py which offsets may be committed
broker.py      `KafkaBroker`: the seam through aiokafka (publisher.py, reader.py, connection.py)
errors.py      aiokafka's errors mapped into bridge/errors.py, in one place
memory.py      `MemoryBroker`: the seam in memory, for the fast tests
"""
