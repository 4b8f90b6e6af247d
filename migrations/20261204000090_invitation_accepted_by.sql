-- Who accepted an invitation: the addressee, or whoever held its token link.
alter table invitations add column accepted_by uuid references users (id) on delete set null;
