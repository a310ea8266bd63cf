/* replaced by the block layer */ int vireo_block_placeholder;
