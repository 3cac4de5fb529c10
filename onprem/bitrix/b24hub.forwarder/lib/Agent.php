<?php

namespace B24hub\Forwarder;

/**
 * The Bitrix agent that ships the spool. Bitrix runs the string it was
 * registered with (Module::AGENT) and keeps the agent while the call
 * returns that string again.
 */
final class Agent
{
    public static function run(): string
    {
        try {
            Shipper::fromSettings()->run();
        } catch (\Throwable $e) {
            // An exception would make Bitrix drop the agent for good.
            error_log('b24hub.forwarder: agent: ' . $e->getMessage());
            try {
                Status::failed('agent: ' . $e->getMessage(), time(), (new Settings())->maxBackoff());
            } catch (\Throwable) {
            }
        }
        return Module::AGENT;
    }
}
