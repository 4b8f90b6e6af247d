-- The nearest earlier messages of a user with many of them come from this index
-- (`conversations::related_messages`, HNSW plan); users with few are compared exactly.
create index message_embeddings_hnsw on message_embeddings using hnsw (embedding vector_cosine_ops);
