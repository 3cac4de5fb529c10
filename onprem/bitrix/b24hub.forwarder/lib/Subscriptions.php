<?php

namespace B24hub\Forwarder;

use Bitrix\Main\Config\Option;
use Bitrix\Main\EventManager;

/**
 * Keeps the persistent event handlers (b_module_to_module) equal to the
 * configured list. Handlers are registered with registerEventHandler, so
 * Bitrix includes this module before calling EventCapture::handle, and the
 * module and event names are passed as the handler's first arguments
 * (TO_METHOD_ARG): one static method serves every event.
 */
final class Subscriptions
{
    /** Option holding what is registered now, so removals are exact. */
    private const REGISTERED = 'registered_events';

    /**
     * Registers handlers for $pairs and unregisters the ones registered
     * earlier that are no longer listed.
     *
     * @param list<array{0: string, 1: string}> $pairs
     */
    public static function sync(array $pairs): void
    {
        $em = EventManager::getInstance();
        $want = [];
        foreach ($pairs as [$module, $event]) {
            $want[$module . ':' . $event] = [$module, $event];
        }
        $have = self::registered();
        foreach ($have as $key => [$module, $event]) {
            if (!isset($want[$key])) {
                $em->unRegisterEventHandler($module, $event, Module::ID, EventCapture::class, 'handle', '', [$module, $event]);
            }
        }
        foreach ($want as $key => [$module, $event]) {
            if (!isset($have[$key])) {
                $em->registerEventHandler($module, $event, Module::ID, EventCapture::class, 'handle', 100, '', [$module, $event]);
            }
        }
        Option::set(Module::ID, self::REGISTERED, json_encode(array_values($want)));
    }

    /** Unregisters every handler of the module (uninstall). */
    public static function clear(): void
    {
        self::sync([]);
    }

    /** @return array<string, array{0: string, 1: string}> */
    public static function registered(): array
    {
        $out = [];
        foreach (json_decode(Option::get(Module::ID, self::REGISTERED, '[]'), true) ?: [] as [$module, $event]) {
            $out[$module . ':' . $event] = [$module, $event];
        }
        return $out;
    }
}
