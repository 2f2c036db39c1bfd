/**
 * `kafka.topic_pattern`: a regular expression subscription. librdkafka treats a subscribed name
 * that starts with `^` as a pattern and, at each metadata refresh
 * (`topic.metadata.refresh.interval.ms`), assigns the partitions of every topic that matches,
 * those created later included. The same pattern is matched here, in JavaScript, where the
 * pipeline needs the matching topics itself (the dead-letter topic check, `--until-caught-up`).
 */

/** The pattern as librdkafka needs it: anchored at the start (a leading `^` marks a pattern). */
export function anchoredTopicPattern(pattern: string): string {
  return pattern.startsWith('^') ? pattern : `^${pattern}`;
}

/** The pattern compiled for matching here. */
export function topicPatternRegExp(pattern: string): RegExp {
  return new RegExp(anchoredTopicPattern(pattern));
}

/**
 * Why `pattern` cannot be used, or undefined. Constructs that librdkafka's POSIX-style engine
 * reads differently from JavaScript (look-arounds, back-references, lazy quantifiers) are refused
 * rather than left to match other topics than the operator meant.
 */
export function topicPatternProblem(pattern: string): string | undefined {
  try {
    topicPatternRegExp(pattern);
  } catch (error) {
    return `is not a regular expression: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (/\(\?|\\[1-9kbB]|[*+?}]\?/.test(pattern)) {
    return 'uses a construct librdkafka does not read as JavaScript does (look-around, back-reference, word boundary or lazy quantifier); use plain POSIX extended syntax';
  }
  return undefined;
}

/** The topics of `names` that `pattern` matches; Kafka's internal topics (`__…`) never. */
export function topicsMatching(pattern: string, names: readonly string[]): string[] {
  const re = topicPatternRegExp(pattern);
  return names.filter((name) => !name.startsWith('__') && re.test(name)).sort();
}

/** The topics consumed given the cluster's: the named ones, then those the pattern matches. */
export function subscribedTopics(kafka: { readonly topics: readonly string[]; readonly topicPattern?: string }, clusterTopics: readonly string[]): string[] {
  const matched = kafka.topicPattern === undefined ? [] : topicsMatching(kafka.topicPattern, clusterTopics);
  return [...new Set([...kafka.topics, ...matched])];
}

/** What the consumer subscribes to: the named topics and the pattern (librdkafka takes both in one list). */
export function subscription(kafka: { readonly topics: readonly string[]; readonly topicPattern?: string }): string[] {
  return kafka.topicPattern === undefined ? [...kafka.topics] : [...kafka.topics, kafka.topicPattern];
}
