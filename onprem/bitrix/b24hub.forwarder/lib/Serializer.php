<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Event;

/**
 * Turns a handler's arguments into the JSON the ingress accepts. Values are
 * copied, never referenced: a handler of an OnBefore… event receives the
 * field array by reference, and the copy must not change it.
 */
final class Serializer
{
    /** Nesting deeper than this is replaced by a marker. */
    private const MAX_DEPTH = 10;

    /** Largest event payload kept whole; above it the params are dropped. */
    public const MAX_PAYLOAD = 65536;

    /** Keys whose values never leave the installation. */
    private const SECRET_KEY = '/password|checkword|secret|token|^pass$|^auth$/i';

    /**
     * Builds one event record.
     *
     * @param list<mixed> $args the handler's arguments after module and event
     * @return array<string, mixed>
     */
    public static function record(string $module, string $event, array $args, ?int $userId, \DateTimeInterface $now): array
    {
        if (count($args) === 1 && $args[0] instanceof Event) {
            // A D7 event: its parameters are the payload.
            $args = [$args[0]->getParameters()];
        }
        $params = [];
        foreach ($args as $a) {
            $params[] = self::value($a, 0);
        }
        $record = [
            'id' => Uuid::v4(),
            'module' => strtolower($module),
            'event' => $event,
            'time' => $now->format('Y-m-d\TH:i:s.vP'),
            'user_id' => $userId !== null && $userId > 0 ? $userId : null,
        ];
        $entity = self::entityId($params);
        if ($entity !== null) {
            $record['entity_id'] = $entity;
        }
        $record['params'] = $params;
        return $record;
    }

    /**
     * Encodes a record. A record whose JSON exceeds MAX_PAYLOAD keeps its
     * ids and gets "truncated": true with empty params, so the event still
     * arrives (the ingress caps a delivery's size) and consumers can fetch
     * the entity instead.
     */
    public static function encode(array $record): string
    {
        $flags = JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;
        $json = json_encode($record, $flags);
        if (strlen($json) > self::MAX_PAYLOAD) {
            $record['params'] = [];
            $record['truncated'] = true;
            $json = json_encode($record, $flags);
        }
        return $json;
    }

    /**
     * The id of the entity an event is about: a scalar first argument
     * (OnAfterCrmDealDelete($id)), or the ID of a first argument that is a
     * field array (OnAfterCrmDealAdd(&$fields)), or the "id" / "primary" of
     * a D7 ORM event's parameters.
     */
    public static function entityId(array $params): ?string
    {
        $first = $params[0] ?? null;
        $candidate = null;
        if (is_int($first) || (is_string($first) && $first !== '')) {
            $candidate = $first;
        } elseif (is_array($first)) {
            foreach (['ID', 'id'] as $k) {
                if (isset($first[$k]) && is_scalar($first[$k])) {
                    $candidate = $first[$k];
                    break;
                }
                if (isset($first[$k]['ID']) && is_scalar($first[$k]['ID'])) {
                    $candidate = $first[$k]['ID']; // ORM: ['id' => ['ID' => 5]]
                    break;
                }
            }
            if ($candidate === null && isset($first['primary']['ID']) && is_scalar($first['primary']['ID'])) {
                $candidate = $first['primary']['ID'];
            }
        }
        if ($candidate === null || is_bool($candidate)) {
            return null;
        }
        $s = (string) $candidate;
        return preg_match('/^[A-Za-z0-9_-]{1,64}$/', $s) ? $s : null;
    }

    private static function value(mixed $v, int $depth): mixed
    {
        if ($v === null || is_bool($v) || is_int($v) || is_string($v)) {
            return $v;
        }
        if (is_float($v)) {
            return is_finite($v) ? $v : (string) $v;
        }
        if ($depth >= self::MAX_DEPTH) {
            return '[nested too deep]';
        }
        if (is_array($v)) {
            $out = [];
            foreach ($v as $k => $item) {
                $out[$k] = is_string($k) && preg_match(self::SECRET_KEY, $k) ? '[redacted]' : self::value($item, $depth + 1);
            }
            return $out;
        }
        if ($v instanceof \DateTimeInterface) {
            return $v->format('Y-m-d\TH:i:sP');
        }
        if ($v instanceof \Bitrix\Main\Type\Date) {
            // Bitrix's Date and DateTime wrap a PHP DateTime.
            return $v->format('Y-m-d\TH:i:sP');
        }
        if ($v instanceof Event) {
            return self::value($v->getParameters(), $depth + 1);
        }
        if ($v instanceof \JsonSerializable) {
            return self::value($v->jsonSerialize(), $depth + 1);
        }
        if (is_object($v) && method_exists($v, 'collectValues')) {
            // An ORM entity object (EntityObject::collectValues).
            return self::value($v->collectValues(), $depth + 1);
        }
        if (is_object($v) && method_exists($v, 'toArray')) {
            return self::value($v->toArray(), $depth + 1);
        }
        if (is_object($v)) {
            return ['@class' => get_class($v)];
        }
        return '[' . get_debug_type($v) . ']';
    }
}
