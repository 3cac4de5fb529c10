<?php
// Stand-in, continued: database connection, options, dates, the current
// user and localisation.

namespace Bitrix\Main\DB;

/**
 * The kernel's database connection, over PDO SQLite. isTableExists,
 * dropTable, queryExecute, lock and unlock keep the kernel's signatures;
 * fetchValue/fetchAll/insert are stand-in helpers.
 */
final class Connection
{
    private \PDO $pdo;

    /** @var array<string, resource> */
    private array $locks = [];

    public function __construct(private string $path)
    {
        $this->pdo = new \PDO('sqlite:' . $path, null, null, [\PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION]);
        $this->pdo->exec('PRAGMA busy_timeout = 5000');
        // Durability against power loss is not what the stand-in tests.
        $this->pdo->exec('PRAGMA synchronous = OFF');
    }

    public function bootstrapKernelTables(): void
    {
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS b_option (MODULE_ID VARCHAR(50) NOT NULL, NAME VARCHAR(100) NOT NULL, VALUE TEXT, PRIMARY KEY (MODULE_ID, NAME))');
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS b_module (ID VARCHAR(50) PRIMARY KEY)');
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS b_module_to_module (ID INTEGER PRIMARY KEY AUTOINCREMENT, SORT INT NOT NULL DEFAULT 100, FROM_MODULE_ID VARCHAR(50) NOT NULL, MESSAGE_ID VARCHAR(255) NOT NULL, TO_MODULE_ID VARCHAR(50) NOT NULL, TO_CLASS VARCHAR(255) NOT NULL DEFAULT \'\', TO_METHOD VARCHAR(255) NOT NULL DEFAULT \'\', TO_PATH VARCHAR(255) NOT NULL DEFAULT \'\', TO_METHOD_ARG VARCHAR(255) NOT NULL DEFAULT \'\', VERSION INT NOT NULL DEFAULT 1)');
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS b_agent (ID INTEGER PRIMARY KEY AUTOINCREMENT, MODULE_ID VARCHAR(50), SORT INT NOT NULL DEFAULT 100, NAME TEXT NOT NULL, ACTIVE CHAR(1) NOT NULL DEFAULT \'Y\', NEXT_EXEC INT NOT NULL, AGENT_INTERVAL INT NOT NULL DEFAULT 86400, IS_PERIOD CHAR(1) NOT NULL DEFAULT \'N\')');
    }

    public function getPdo(): \PDO
    {
        return $this->pdo;
    }

    public function queryExecute(string $sql, array $params = []): void
    {
        $this->pdo->prepare($sql)->execute(array_values($params));
    }

    public function fetchValue(string $sql, array $params = []): mixed
    {
        $st = $this->pdo->prepare($sql);
        $st->execute(array_values($params));
        $v = $st->fetchColumn();
        return $v === false ? null : $v;
    }

    public function fetchAll(string $sql, array $params = []): array
    {
        $st = $this->pdo->prepare($sql);
        $st->execute(array_values($params));
        return $st->fetchAll(\PDO::FETCH_ASSOC);
    }

    public function isTableExists(string $tableName): bool
    {
        return (bool) $this->fetchValue("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [$tableName]);
    }

    public function dropTable(string $tableName): void
    {
        $this->pdo->exec('DROP TABLE ' . $tableName);
    }

    /**
     * A named lock, like MySQL GET_LOCK: held until unlock or the end of
     * the process; with $timeout 0 it does not wait. Implemented with flock
     * on a file per database and name, which also excludes other processes.
     */
    public function lock(string $name, int $timeout = 0): bool
    {
        if (isset($this->locks[$name])) {
            return false;
        }
        $f = fopen(sys_get_temp_dir() . '/bx-standin-lock-' . md5(realpath($this->path) . "\0" . $name), 'c');
        $deadline = microtime(true) + $timeout;
        do {
            if (flock($f, LOCK_EX | LOCK_NB)) {
                $this->locks[$name] = $f;
                return true;
            }
            usleep(50000);
        } while (microtime(true) < $deadline);
        fclose($f);
        return false;
    }

    public function unlock(string $name): bool
    {
        if (!isset($this->locks[$name])) {
            return false;
        }
        flock($this->locks[$name], LOCK_UN);
        fclose($this->locks[$name]);
        unset($this->locks[$name]);
        return true;
    }
}

namespace Bitrix\Main\Config;

use Bitrix\Main\Application;
use Bitrix\Main\Loader;

/**
 * Module settings in b_option. get() falls back to the module's
 * default_option.php when $default is empty, as the kernel does.
 */
final class Option
{
    /** @var array<string, array<string, string>> */
    private static array $defaults = [];

    public static function reset(): void
    {
        self::$defaults = [];
    }

    public static function get($moduleId, $name, $default = '', $siteId = false): string
    {
        $v = Application::getConnection()->fetchValue('SELECT VALUE FROM b_option WHERE MODULE_ID = ? AND NAME = ?', [$moduleId, $name]);
        if ($v !== null) {
            return (string) $v;
        }
        if ($default === '' || $default === null) {
            $defaults = self::getDefaults($moduleId);
            if (isset($defaults[$name])) {
                return (string) $defaults[$name];
            }
        }
        return (string) $default;
    }

    public static function set($moduleId, $name, $value = '', $siteId = ''): void
    {
        Application::getConnection()->queryExecute('INSERT OR REPLACE INTO b_option (MODULE_ID, NAME, VALUE) VALUES (?, ?, ?)', [$moduleId, $name, (string) $value]);
    }

    public static function delete($moduleId, array $filter = []): void
    {
        if (isset($filter['name'])) {
            Application::getConnection()->queryExecute('DELETE FROM b_option WHERE MODULE_ID = ? AND NAME = ?', [$moduleId, $filter['name']]);
            return;
        }
        Application::getConnection()->queryExecute('DELETE FROM b_option WHERE MODULE_ID = ?', [$moduleId]);
    }

    public static function getDefaults($moduleId): array
    {
        if (!isset(self::$defaults[$moduleId])) {
            self::$defaults[$moduleId] = [];
            $file = Loader::getLocal('modules/' . $moduleId . '/default_option.php');
            if ($file !== false) {
                $var = str_replace('.', '_', $moduleId) . '_default_option';
                $$var = [];
                include $file;
                self::$defaults[$moduleId] = is_array($$var) ? $$var : [];
            }
        }
        return self::$defaults[$moduleId];
    }
}

namespace Bitrix\Main\Type;

/** A date; the kernel's wraps a PHP DateTime. */
class Date
{
    protected \DateTime $value;

    public function __construct($date = null, $format = null)
    {
        $this->value = new \DateTime();
        if ($date !== null && $date !== '') {
            $parsed = \DateTime::createFromFormat($format ?? 'd.m.Y', $date);
            if ($parsed === false) {
                throw new \Bitrix\Main\ObjectException('Incorrect date: ' . $date);
            }
            $this->value = $parsed;
        }
    }

    public function format($format): string
    {
        return $this->value->format($format);
    }

    public function getTimestamp(): int
    {
        return $this->value->getTimestamp();
    }

    public function toString(): string
    {
        return $this->value->format('d.m.Y');
    }

    public function __toString(): string
    {
        return $this->toString();
    }
}

/** A date and time; new DateTime() is now. */
class DateTime extends Date
{
    public function __construct($time = null, $format = null)
    {
        $this->value = new \DateTime();
        if ($time !== null && $time !== '') {
            $parsed = \DateTime::createFromFormat($format ?? 'd.m.Y H:i:s', $time);
            if ($parsed === false) {
                throw new \Bitrix\Main\ObjectException('Incorrect date/time: ' . $time);
            }
            $this->value = $parsed;
        }
    }

    public static function createFromTimestamp($timestamp): self
    {
        $d = new self();
        $d->value->setTimestamp((int) $timestamp);
        return $d;
    }

    public function toString(): string
    {
        return $this->value->format('d.m.Y H:i:s');
    }
}

namespace Bitrix\Main;

class ObjectException extends SystemException
{
}

namespace Bitrix\Main\Engine;

/** The authorised user of the request; the kernel's wraps global $USER. */
final class CurrentUser
{
    public static function get(): self
    {
        return new self();
    }

    public function getId(): ?int
    {
        $user = $GLOBALS['USER'] ?? null;
        if (!is_object($user) || !$user->GetID()) {
            return null;
        }
        return (int) $user->GetID();
    }
}

namespace Bitrix\Main\Localization;

/**
 * Language phrases: loadMessages(file) reads lang/<LANGUAGE_ID>/<path of
 * file below the module> from the nearest folder above that has one.
 */
final class Loc
{
    /** @var array<string, string> */
    private static array $messages = [];

    public static function loadMessages($file): void
    {
        $lang = defined('LANGUAGE_ID') ? LANGUAGE_ID : 'en';
        $dir = dirname($file);
        $rel = basename($file);
        while ($dir !== '/' && $dir !== '.') {
            $candidate = $dir . '/lang/' . $lang . '/' . $rel;
            if (is_file($candidate)) {
                $MESS = [];
                include $candidate;
                self::$messages = array_merge(self::$messages, $MESS);
                return;
            }
            $rel = basename($dir) . '/' . $rel;
            $dir = dirname($dir);
        }
    }

    public static function getMessage($code, $replace = null, $language = null): ?string
    {
        $m = self::$messages[$code] ?? null;
        if ($m !== null && is_array($replace)) {
            $m = strtr($m, $replace);
        }
        return $m;
    }
}
