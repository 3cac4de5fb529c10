<?php

namespace B24hub\Forwarder;

/**
 * Module identity shared by the installer, the handlers and the agent.
 */
final class Module
{
    /** The Bitrix module id: a partner module is "<partner>.<name>". */
    public const ID = 'b24hub.forwarder';

    /** The agent's PHP call; it returns itself so Bitrix keeps the agent. */
    public const AGENT = '\\B24hub\\Forwarder\\Agent::run();';

    /** How often the agent runs, in seconds. */
    public const AGENT_INTERVAL = 60;

    /** The name of the lock that keeps one shipper at a time. */
    public const LOCK = 'b24hub_forwarder_ship';
}
