<?php
$MESS['B24HUB_FORWARDER_MODULE_NAME'] = 'b24hub forwarder';
$MESS['B24HUB_FORWARDER_MODULE_DESCRIPTION'] = 'Forwards PHP-level events (CRM, custom modules) to b24hub through a durable spool, signed, without slowing down users.';
$MESS['B24HUB_FORWARDER_PHP_VERSION'] = 'b24hub.forwarder needs PHP 8.1 or later.';
