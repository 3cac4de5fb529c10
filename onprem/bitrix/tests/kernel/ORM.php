<?php
// Stand-in for the D7 ORM as the module uses it: a DataManager subclass
// declares getTableName and getMap; getEntity()->createDbTable() creates
// the table; add, getList (select, filter, order, limit), getCount and
// delete work on it and return the kernel's result objects.

namespace Bitrix\Main\ORM\Fields;

abstract class ScalarField
{
    public function __construct(protected string $name, protected array $parameters = [])
    {
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function isPrimary(): bool
    {
        return !empty($this->parameters['primary']);
    }

    public function isAutocomplete(): bool
    {
        return !empty($this->parameters['autocomplete']);
    }

    public function isRequired(): bool
    {
        return !empty($this->parameters['required']);
    }

    /** Column type for CREATE TABLE. */
    abstract public function sqlType(): string;

    /** PHP value → column value. */
    public function toDb(mixed $v): mixed
    {
        return $v;
    }

    /** Column value → PHP value, as getList's fetch returns it. */
    public function fromDb(mixed $v): mixed
    {
        return $v;
    }
}

class IntegerField extends ScalarField
{
    public function sqlType(): string
    {
        return 'INTEGER';
    }

    public function fromDb(mixed $v): mixed
    {
        return $v === null ? null : (int) $v;
    }
}

class StringField extends ScalarField
{
    public function sqlType(): string
    {
        return 'VARCHAR(' . (int) ($this->parameters['size'] ?? 255) . ')';
    }

    public function toDb(mixed $v): mixed
    {
        $size = (int) ($this->parameters['size'] ?? 255);
        if ($v !== null && mb_strlen((string) $v) > $size) {
            throw new \Bitrix\Main\ArgumentException($this->name . ' longer than ' . $size);
        }
        return $v;
    }
}

class TextField extends ScalarField
{
    public function sqlType(): string
    {
        return 'TEXT';
    }
}

class DatetimeField extends ScalarField
{
    public function sqlType(): string
    {
        return 'DATETIME';
    }

    public function toDb(mixed $v): mixed
    {
        return $v instanceof \Bitrix\Main\Type\DateTime ? $v->format('Y-m-d H:i:s') : $v;
    }

    public function fromDb(mixed $v): mixed
    {
        return $v === null ? null : new \Bitrix\Main\Type\DateTime($v, 'Y-m-d H:i:s');
    }
}

namespace Bitrix\Main\ORM;

use Bitrix\Main\Application;
use Bitrix\Main\ORM\Fields\ScalarField;

final class Entity
{
    /** @param array<string, ScalarField> $fields */
    public function __construct(private string $table, private array $fields)
    {
    }

    public function getDBTableName(): string
    {
        return $this->table;
    }

    /** @return array<string, ScalarField> */
    public function getFields(): array
    {
        return $this->fields;
    }

    public function getField(string $name): ScalarField
    {
        if (!isset($this->fields[$name])) {
            throw new \Bitrix\Main\ArgumentException('Unknown field ' . $name . ' of ' . $this->table);
        }
        return $this->fields[$name];
    }

    public function getPrimary(): string
    {
        foreach ($this->fields as $f) {
            if ($f->isPrimary()) {
                return $f->getName();
            }
        }
        throw new \Bitrix\Main\SystemException('no primary key in ' . $this->table);
    }

    public function createDbTable(): void
    {
        $cols = [];
        foreach ($this->fields as $f) {
            $col = $f->getName() . ' ' . $f->sqlType();
            if ($f->isPrimary()) {
                $col .= $f->isAutocomplete() ? ' PRIMARY KEY AUTOINCREMENT' : ' PRIMARY KEY';
            } elseif ($f->isRequired()) {
                $col .= ' NOT NULL';
            }
            $cols[] = $col;
        }
        Application::getConnection()->getPdo()->exec('CREATE TABLE ' . $this->table . ' (' . implode(', ', $cols) . ')');
    }
}

namespace Bitrix\Main\ORM\Data;

use Bitrix\Main\Application;
use Bitrix\Main\ORM\Entity;

class Result
{
    /** @var list<string> */
    protected array $errors = [];

    public function isSuccess(): bool
    {
        return !$this->errors;
    }

    public function addError(string $message): void
    {
        $this->errors[] = $message;
    }

    /** @return list<string> */
    public function getErrorMessages(): array
    {
        return $this->errors;
    }
}

class AddResult extends Result
{
    private mixed $id = null;

    public function setId(mixed $id): void
    {
        $this->id = $id;
    }

    public function getId(): mixed
    {
        return $this->id;
    }
}

class DeleteResult extends Result
{
}

/** What getList returns: fetch() row by row, or fetchAll(). */
final class QueryResult
{
    public function __construct(private \PDOStatement $st, private Entity $entity)
    {
    }

    public function fetch(): array|false
    {
        $row = $this->st->fetch(\PDO::FETCH_ASSOC);
        if ($row === false) {
            return false;
        }
        foreach ($row as $k => $v) {
            $row[$k] = $this->entity->getField($k)->fromDb($v);
        }
        return $row;
    }

    public function fetchAll(): array
    {
        $out = [];
        while (($row = $this->fetch()) !== false) {
            $out[] = $row;
        }
        return $out;
    }
}

abstract class DataManager
{
    /** @var array<class-string, Entity> */
    private static array $entities = [];

    abstract public static function getTableName();

    abstract public static function getMap();

    public static function getEntity(): Entity
    {
        if (!isset(self::$entities[static::class])) {
            $fields = [];
            foreach (static::getMap() as $f) {
                $fields[$f->getName()] = $f;
            }
            self::$entities[static::class] = new Entity(static::getTableName(), $fields);
        }
        return self::$entities[static::class];
    }

    public static function add(array $data): AddResult
    {
        $entity = static::getEntity();
        $r = new AddResult();
        foreach ($entity->getFields() as $f) {
            if ($f->isRequired() && !$f->isAutocomplete() && (!array_key_exists($f->getName(), $data) || $data[$f->getName()] === null || $data[$f->getName()] === '')) {
                $r->addError('Field "' . $f->getName() . '" is required');
            }
        }
        if (!$r->isSuccess()) {
            return $r;
        }
        $cols = [];
        $vals = [];
        foreach ($data as $k => $v) {
            $cols[] = $entity->getField($k)->getName();
            $vals[] = $entity->getField($k)->toDb($v);
        }
        $pdo = Application::getConnection()->getPdo();
        try {
            $pdo->prepare('INSERT INTO ' . $entity->getDBTableName() . ' (' . implode(', ', $cols) . ') VALUES (' . implode(', ', array_fill(0, count($cols), '?')) . ')')
                ->execute($vals);
        } catch (\PDOException $e) {
            // The kernel turns SQL errors into exceptions too.
            throw new \Bitrix\Main\DB\SqlQueryException($e->getMessage(), 0, $e);
        }
        $r->setId((int) $pdo->lastInsertId());
        return $r;
    }

    public static function delete($primary): DeleteResult
    {
        $entity = static::getEntity();
        Application::getConnection()->queryExecute('DELETE FROM ' . $entity->getDBTableName() . ' WHERE ' . $entity->getPrimary() . ' = ?', [$primary]);
        return new DeleteResult();
    }

    public static function getList(array $parameters = []): QueryResult
    {
        $entity = static::getEntity();
        $select = $parameters['select'] ?? ['*'];
        if ($select === ['*']) {
            $select = array_keys($entity->getFields());
        }
        foreach ($select as $s) {
            $entity->getField($s);
        }
        [$where, $params] = self::where($entity, $parameters['filter'] ?? []);
        $sql = 'SELECT ' . implode(', ', $select) . ' FROM ' . $entity->getDBTableName() . $where;
        if (!empty($parameters['order'])) {
            $parts = [];
            foreach ($parameters['order'] as $field => $dir) {
                $parts[] = $entity->getField($field)->getName() . (strtoupper($dir) === 'DESC' ? ' DESC' : ' ASC');
            }
            $sql .= ' ORDER BY ' . implode(', ', $parts);
        }
        if (isset($parameters['limit'])) {
            $sql .= ' LIMIT ' . (int) $parameters['limit'];
            if (isset($parameters['offset'])) {
                $sql .= ' OFFSET ' . (int) $parameters['offset'];
            }
        }
        $st = Application::getConnection()->getPdo()->prepare($sql);
        $st->execute($params);
        return new QueryResult($st, $entity);
    }

    public static function getCount($filter = []): int
    {
        $entity = static::getEntity();
        [$where, $params] = self::where($entity, $filter);
        return (int) Application::getConnection()->fetchValue('SELECT COUNT(*) FROM ' . $entity->getDBTableName() . $where, $params);
    }

    /** Filter keys: "FIELD" or "=FIELD" (equals), "@FIELD" (in a list), "<FIELD", ">FIELD". */
    private static function where(Entity $entity, array $filter): array
    {
        $clauses = [];
        $params = [];
        foreach ($filter as $key => $value) {
            preg_match('/^(=|@|<=|>=|<|>)?(\w+)$/', $key, $m);
            $field = $entity->getField($m[2]);
            $op = $m[1] ?: '=';
            if ($op === '@') {
                $clauses[] = $field->getName() . ' IN (' . implode(', ', array_fill(0, max(1, count($value)), '?')) . ')';
                $params = array_merge($params, $value ?: [null]);
                continue;
            }
            $clauses[] = $field->getName() . ' ' . $op . ' ?';
            $params[] = $field->toDb($value);
        }
        return [$clauses ? ' WHERE ' . implode(' AND ', $clauses) : '', $params];
    }
}

namespace Bitrix\Main\DB;

class SqlQueryException extends \Bitrix\Main\SystemException
{
}
