<?php

namespace B24hub\Forwarder;

use Bitrix\Main\ORM\Data\DataManager;
use Bitrix\Main\ORM\Fields\DatetimeField;
use Bitrix\Main\ORM\Fields\IntegerField;
use Bitrix\Main\ORM\Fields\StringField;
use Bitrix\Main\ORM\Fields\TextField;

/**
 * The spool: events captured in users' requests and not yet acknowledged by
 * the ingress. ID is auto-increment, so ordering by it is capture order.
 * The installer creates the table from this map (Entity::createDbTable).
 */
class SpoolTable extends DataManager
{
    public static function getTableName(): string
    {
        return 'b24hub_forwarder_spool';
    }

    public static function getMap(): array
    {
        return [
            new IntegerField('ID', ['primary' => true, 'autocomplete' => true]),
            // The event's UUID, also inside PAYLOAD; the ingress acknowledges by it.
            new StringField('EVENT_ID', ['required' => true, 'size' => 36]),
            // The event's JSON exactly as it will be signed and sent.
            new TextField('PAYLOAD', ['required' => true]),
            new DatetimeField('CREATED_AT', ['required' => true]),
        ];
    }
}
