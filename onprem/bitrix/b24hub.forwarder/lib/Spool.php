<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Type\DateTime;

/**
 * The durable queue between the user's request and the network, on
 * SpoolTable.
 */
final class Spool
{
    /** Appends one encoded event; throws when the row cannot be stored. */
    public static function append(string $eventId, string $payload): void
    {
        $r = SpoolTable::add(['EVENT_ID' => $eventId, 'PAYLOAD' => $payload, 'CREATED_AT' => new DateTime()]);
        if (!$r->isSuccess()) {
            throw new \RuntimeException('b24hub.forwarder: spool: ' . implode('; ', $r->getErrorMessages()));
        }
    }

    /**
     * The oldest $limit rows, in capture order.
     *
     * @return list<array{ID: int, EVENT_ID: string, PAYLOAD: string}>
     */
    public static function head(int $limit): array
    {
        return SpoolTable::getList([
            'select' => ['ID', 'EVENT_ID', 'PAYLOAD'],
            'order' => ['ID' => 'ASC'],
            'limit' => $limit,
        ])->fetchAll();
    }

    /**
     * Deletes the rows of $rows whose event id is in $acked and returns
     * how many it deleted. Rows are deleted one by one by primary key, so an
     * id the ingress did not name is never touched.
     */
    public static function remove(array $rows, array $acked): int
    {
        $ack = array_fill_keys($acked, true);
        $n = 0;
        foreach ($rows as $row) {
            if (isset($ack[$row['EVENT_ID']])) {
                $r = SpoolTable::delete($row['ID']);
                if (!$r->isSuccess()) {
                    throw new \RuntimeException('b24hub.forwarder: spool delete: ' . implode('; ', $r->getErrorMessages()));
                }
                $n++;
            }
        }
        return $n;
    }

    /** How many events wait. */
    public static function size(): int
    {
        return (int) SpoolTable::getCount();
    }

    /** When the oldest waiting event was captured; null when empty. */
    public static function oldest(): ?DateTime
    {
        $row = SpoolTable::getList(['select' => ['CREATED_AT'], 'order' => ['ID' => 'ASC'], 'limit' => 1])->fetch();
        return $row ? $row['CREATED_AT'] : null;
    }
}
