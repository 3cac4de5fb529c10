<?php

namespace B24hub\Forwarder;

/**
 * Random (version 4) UUIDs for event ids.
 */
final class Uuid
{
    /**
     * Returns a lower-case RFC 4122 version 4 UUID from random_bytes, the
     * form the ingress requires.
     */
    public static function v4(): string
    {
        $b = random_bytes(16);
        $b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
        $b[8] = chr((ord($b[8]) & 0x3f) | 0x80);
        $h = bin2hex($b);
        return substr($h, 0, 8) . '-' . substr($h, 8, 4) . '-' . substr($h, 12, 4) . '-' . substr($h, 16, 4) . '-' . substr($h, 20);
    }
}
