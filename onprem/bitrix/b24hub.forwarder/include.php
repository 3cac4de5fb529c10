<?php
// b24hub.forwarder: captures PHP-level events into a spool and ships them to
// the b24hub ingress. Bitrix includes this file when a handler of the module
// is called, when an agent of the module runs and on Loader::includeModule.
// Classes live in lib/ under B24hub\Forwarder, one class per file, named as
// the class (PSR-4); the module registers its own autoloader so it does not
// depend on the kernel version's autoloading rules for partner modules.

spl_autoload_register(static function (string $class): void {
    $prefix = 'B24hub\\Forwarder\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/lib/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require_once $file;
    }
});
