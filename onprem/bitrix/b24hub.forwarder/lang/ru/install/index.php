<?php
$MESS['B24HUB_FORWARDER_MODULE_NAME'] = 'b24hub: пересылка событий';
$MESS['B24HUB_FORWARDER_MODULE_DESCRIPTION'] = 'Пересылает события ядра (CRM, собственные модули) в b24hub через надёжную очередь, с подписью и без замедления работы пользователей.';
$MESS['B24HUB_FORWARDER_PHP_VERSION'] = 'Для b24hub.forwarder нужен PHP 8.1 или новее.';
