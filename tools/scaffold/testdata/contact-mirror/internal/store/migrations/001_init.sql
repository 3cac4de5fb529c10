-- The contacts contact-mirror keeps: the latest crm.contact.get answer per
-- portal and contact.
CREATE TABLE contacts (
    member_id  text  NOT NULL,
    contact_id text  NOT NULL,
    name       text  NOT NULL DEFAULT '',
    last_name  text  NOT NULL DEFAULT '',
    email      text  NOT NULL DEFAULT '',
    fields     jsonb NOT NULL,
    PRIMARY KEY (member_id, contact_id)
);
