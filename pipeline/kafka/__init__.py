"""Kafka clients as the pipeline uses them: their configuration in one place
(:mod:`.config`) and confluent-kafka's producer on an asyncio loop (:mod:`.producer`)."""
