/** Names that tie Kafka positions to the Delta log, and the librdkafka settings we derive. */
import type { Config } from '../config/index.js';

/**
 * The Delta txn application id recording one topic-partition's position for a consumer group.
 * It is a contract with existing tables: changing it makes every partition start over.
 */
export function txnAppId(groupId: string, topic: string, partition: number): string {
  return `kafka-delta-rust:${groupId}:${topic}:${partition}`;
}

/** librdkafka properties from `kafka.properties` plus the credentials section. */
export function kafkaProperties(config: Config): Record<string, string> {
  const props: Record<string, string> = { ...config.kafka.properties };
  const { kafkaUsername, kafkaPassword, saslMechanism, securityProtocol } = config.credentials;
  if (kafkaUsername !== undefined || kafkaPassword !== undefined) {
    props['security.protocol'] ??= (securityProtocol ?? 'SASL_SSL').toLowerCase();
    props['sasl.mechanisms'] ??= saslMechanism;
    if (kafkaUsername !== undefined) props['sasl.username'] = kafkaUsername;
    if (kafkaPassword !== undefined) props['sasl.password'] = kafkaPassword;
  }
  return props;
}
